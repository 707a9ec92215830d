"""Which vertebral (or spinal) levels a lesion occupies, from a labelled cord (``sct_label_vertebrae``'s
``*_labeled.nii.gz``) or the template's ``PAM50_levels``.

Each axial slice gets the most common non-zero level on it (SCT 7.3's ``vert_level`` of a slice); a lesion's
levels are those of its axial slices. Level numbers grow from head to feet (C1 = 1, ..., C7 = 7, T1 = 8, ...),
so the rostral level is the smallest number and the caudal the largest.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

LEVEL_TYPES = ("vertebral", "spinal")


def slice_levels(levels: np.ndarray) -> np.ndarray:
    """Per RPI axial slice, its most common non-zero level (0 where the slice has none)."""
    out = np.zeros(levels.shape[2], dtype=np.int64)
    for z in range(levels.shape[2]):
        values = levels[:, :, z]
        values = values[values > 0]
        if values.size:
            unique, counts = np.unique(values, return_counts=True)
            out[z] = int(unique[np.argmax(counts)])
    return out


def level_type_of(name: str, given: Optional[str] = None) -> str:
    """``given`` if set, else ``spinal`` when the file name says so, else ``vertebral``."""
    if given:
        return given
    return "spinal" if "spinal" in name.lower() else "vertebral"


def lesion_levels(z_slices: np.ndarray, areas: np.ndarray, per_slice: np.ndarray, cord_area: Optional[np.ndarray],
                  kind: str) -> Dict[str, object]:
    """Level columns of one lesion from its RPI axial slices and its voxel count on each (``areas``); the slice
    of largest axial damage is that of the largest lesion / cord area (lesion area without a cord)."""
    lv = per_slice[z_slices]
    known = lv[lv > 0]
    out: Dict[str, object] = {"level_type": kind, "level_rostral": None, "level_caudal": None,
                              "levels_spanned": None, "level_largest_damage": None}
    if not known.size:
        return out
    if cord_area is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            damage = np.where(cord_area[z_slices] > 0, areas / np.maximum(cord_area[z_slices], 1), 0.0)
    else:
        damage = areas.astype(float)
    damage = np.where(lv > 0, damage, -1.0)
    out.update({"level_rostral": int(known.min()), "level_caudal": int(known.max()),
                "levels_spanned": int(known.max() - known.min() + 1),
                "level_largest_damage": int(lv[int(np.argmax(damage))])})
    return out
