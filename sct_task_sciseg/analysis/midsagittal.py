"""The interpolated midsagittal slice shared by all lesions of a scan (SCT 7.3's ``get_midsagittal_slice``).

The largest lesion (first label among equal volumes) gives the axial slice of its centre of mass (rounded
half to even, as Python's ``round``); on that slice and the two above and below, the cord's centre of mass along
R-L is averaged: that fractional sagittal position ``x`` is the midsagittal slice. Sagittal slices
``floor(x)`` and ``ceil(x)`` are blended with weights ``1 - f`` and ``f``, ``f = x - int(x)``.

Where SCT fails: it reads slices ``z - 2 .. z + 2`` without bounds, so a lesion centre within two slices of the
image top raises IndexError and one near the bottom silently reads the top slices (negative indices). Here
slices outside the image are left out; when none of the five holds cord, the cord slices of the lesion's S-I
extent are used (cannot happen for a lesion inside the cord, kept as a guard).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

HALF_WINDOW = 2  # slices above and below the lesion centre


@dataclass(frozen=True)
class Midsagittal:
    """Fractional RPI sagittal position and the two slices blended for it."""

    x: float
    slices: Tuple[int, int]

    @property
    def factor(self) -> float:
        return self.x - int(self.x)

    def blend(self, a, b):
        """SCT's ``_interpolate_values``, element-wise: (1 - f)·a + f·b; where one side is NaN the other side
        is used (a lesion on one of the two slices only)."""
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        a, b = np.where(np.isnan(a), b, a), np.where(np.isnan(b), a, b)
        f = self.factor
        return (1 - f) * a + f * b

    def plane(self, volume: np.ndarray) -> np.ndarray:
        """The blended (A-P, S-I) plane of an RPI volume."""
        s1, s2 = self.slices
        f = self.factor
        return (1 - f) * volume[s1, :, :] + f * volume[s2, :, :]


def choose(largest, cord_sums) -> Optional[Midsagittal]:
    """The midsagittal slice from the largest lesion (a :class:`~.measures.Lesion` crop) and the cord's
    :class:`~.centerline.SliceSums`."""
    if not largest.mask.any():
        return None
    nz = len(cord_sums.count)
    z_center = int(round(ndimage.center_of_mass(largest.mask)[2] + largest.origin[2]))
    zs = [z for z in range(z_center - HALF_WINDOW, z_center + HALF_WINDOW + 1) if 0 <= z < nz]
    xs = [cord_sums.mean_x(z) for z in zs if cord_sums.count[z]]
    if not xs:
        xs = [cord_sums.mean_x(z) for z in largest.z_slices if cord_sums.count[z]]
    if not xs:
        return None
    x = float(np.mean(xs))
    return Midsagittal(x, (int(np.floor(x)), int(np.ceil(x))))


def at_slice(cord_sums, z: int) -> Optional[Midsagittal]:
    """SCT 7.3's ``-nli-slice``: the cord's R-L centre of mass on RPI axial slice ``z`` (None without cord)."""
    if not cord_sums.count[z]:
        return None
    x = float(cord_sums.mean_x(z))
    return Midsagittal(x, (int(np.floor(x)), int(np.ceil(x))))
