"""Class-aware post-processing of the label map (0 background, 1 cord, 2 lesion).

Unlike ``sct_deepseg``, which applies each flag to every output (so ``-largest 1`` also deletes every lesion
but the biggest), each operation here acts on the class where it makes sense for spinal cord injury:

- ``largest``: keep the largest connected *cord* component (lesion included); lesion voxels outside it go too.
- ``fill_holes``: fill enclosed holes of the *cord* (filled voxels become cord; lesions are unchanged).
- ``remove_small``: drop *lesion* components below a size (``"5mm3"`` / ``"10vox"``); ``"sc:200mm3"`` acts on
  cord components instead. Removed lesion voxels stay cord.
- ``thr``: threshold on the region probabilities (cord region, lesion region) instead of nnU-Net's 0.5.

All are off by default, as in SCT for this task.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

_SIZE = re.compile(r"^(?:(sc|lesion):)?([0-9]*\.?[0-9]+)(mm3|vox)?$")


@dataclass
class PostProcessing:
    thr: Optional[float] = None
    largest: bool = False
    fill_holes: bool = False
    remove_small: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"thr": self.thr, "largest": self.largest, "fill_holes": self.fill_holes,
                "remove_small": list(self.remove_small)}


def parse_size(spec: str) -> Tuple[str, float, str]:
    """``"lesion:5mm3"`` → ``("lesion", 5.0, "mm3")``; class defaults to lesion, unit to voxels."""
    m = _SIZE.match(spec.strip().lower())
    if not m:
        raise ValueError(f"invalid size {spec!r}: use e.g. 5mm3, 10vox, sc:200mm3")
    return m.group(1) or "lesion", float(m.group(2)), m.group(3) or "vox"


def labels_from_probabilities(probs: np.ndarray, thr: float) -> np.ndarray:
    """Region probabilities (cord region, lesion region) → label map, like nnU-Net with a custom threshold."""
    labels = np.zeros(probs.shape[1:], dtype=np.uint8)
    labels[probs[0] >= thr] = 1
    labels[probs[1] >= thr] = 2
    return labels


def _components(mask: np.ndarray):
    from scipy import ndimage
    return ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))


def apply(labels: np.ndarray, pp: PostProcessing, voxel_volume_mm3: float) -> np.ndarray:
    """Apply ``pp`` to a label map (in any orientation: operations are orientation-free)."""
    from scipy import ndimage

    out = labels.astype(np.uint8, copy=True)
    if pp.largest and out.any():
        comp, n = _components(out > 0)
        if n > 1:
            sizes = np.bincount(comp.ravel())[1:]
            out[(comp != 0) & (comp != int(np.argmax(sizes)) + 1)] = 0
    if pp.fill_holes:
        filled = ndimage.binary_fill_holes(out > 0)
        out[filled & (out == 0)] = 1
    for spec in pp.remove_small:
        cls, size, unit = parse_size(spec)
        min_vox = size / voxel_volume_mm3 if unit == "mm3" else size
        mask = out == 2 if cls == "lesion" else out > 0
        comp, n = _components(mask)
        if n:
            sizes = np.bincount(comp.ravel())
            small = np.isin(comp, np.nonzero(sizes < min_vox)[0]) & (comp != 0)
            out[small] = 1 if cls == "lesion" else 0
    return out


def split(labels: np.ndarray, outputs: Sequence) -> dict:
    """Output name → uint8 0/1 mask of the voxels whose label is in that output's labels."""
    return {o.name: np.isin(labels, o.labels).astype(np.uint8) for o in outputs}
