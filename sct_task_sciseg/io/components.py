"""Connected components of binary masks (3-D, 26-connectivity: SCT's and nnU-Net's convention)."""
from __future__ import annotations

from typing import Tuple

import numpy as np

FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def label_components(mask: np.ndarray) -> Tuple[np.ndarray, int]:
    """(component labels 1..n, n) of a 3-D mask, 26-connectivity."""
    from scipy import ndimage

    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=FULL_CONNECTIVITY)
    return labels, int(n)


def component_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxel count of components 1..n (index 0 = component 1)."""
    return np.bincount(labels.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, dtype=np.int64)
