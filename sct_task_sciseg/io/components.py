"""Connected components of binary masks (3-D; 26-connectivity by default, nnU-Net's convention).

``connectivity`` counts how many coordinates two neighbours may differ in, as in scikit-image: 1 = 6-, 2 = 18-,
3 = 26-neighbourhood. Lesions are counted as SCT's ``sct_analyze_lesion`` counts them (scikit-image's
``connectivity=2``: 18-neighbourhood, :data:`LESION_CONNECTIVITY`), in the QC report as in the analysis.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
LESION_CONNECTIVITY = 2  # skimage.measure.label(connectivity=2) in SCT 7.3's sct_analyze_lesion: 18-neighbourhood


def label_components(mask: np.ndarray, connectivity: int = 3) -> Tuple[np.ndarray, int]:
    """(component labels 1..n in raster order of their first voxel, n) of a 3-D mask."""
    from scipy import ndimage

    if connectivity not in (1, 2, 3):
        raise ValueError(f"connectivity must be 1, 2 or 3 (6-, 18- or 26-neighbourhood), not {connectivity!r}")
    structure = FULL_CONNECTIVITY if connectivity == 3 else ndimage.generate_binary_structure(3, connectivity)
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=structure)
    return labels, int(n)


def component_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxel count of components 1..n (index 0 = component 1)."""
    return np.bincount(labels.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, dtype=np.int64)
