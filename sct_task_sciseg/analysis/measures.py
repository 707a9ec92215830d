"""Per-lesion measures of SCT 7.3's ``sct_analyze_lesion`` (volume, length, width, equivalent diameter, axial
damage ratio, midsagittal length and width, image statistics), on RPI arrays.

Every formula keeps SCT's order of floating-point operations, so the numbers agree to the last digit on the same
masks. ``px, py, pz`` are the R-L, A-P and S-I voxel sizes; angles come from :mod:`.centerline`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from .centerline import Angles
from .midsagittal import Midsagittal


@dataclass
class CordContext:
    """What every lesion of a scan is measured against: the cord (RPI, boolean) and, on the columns
    ``x0 ..`` / slices ``z0 ..`` that the lesions and the midsagittal slices reach, its A-P extent per (x, z)."""

    cord: np.ndarray
    zooms: Tuple[float, float, float]
    angles: Angles
    mid: Optional[Midsagittal]
    area: np.ndarray  # cord voxels per axial slice (all slices)
    x0: int
    z0: int
    first: np.ndarray  # (nx', nz'): first (most dorsal) cord index along A-P, -1 where none
    last: np.ndarray  # (nx', nz'): last (most ventral) cord index along A-P, -1 where none
    count: np.ndarray  # (nx', nz'): cord voxels along A-P

    @classmethod
    def of(cls, cord: np.ndarray, zooms, angles: Angles, mid: Optional[Midsagittal], area: np.ndarray,
           box: Tuple[slice, slice, slice]) -> "CordContext":
        """``box``: the lesions' bounding box (RPI); the midsagittal slices are added to its R-L range."""
        x0, x1 = box[0].start, box[0].stop
        if mid is not None:
            x0, x1 = min(x0, mid.slices[0]), max(x1, mid.slices[1] + 1)
        part = cord[x0:x1, :, box[2]]
        first, last, count = column_extent(part, 0)
        return cls(cord, tuple(zooms), angles, mid, area, x0, box[2].start, first, last, count)

    def at(self, values: np.ndarray, x, z):
        """A per-column array (``first``/``last``/``count``) at RPI (x, z)."""
        return values[np.asarray(x) - self.x0, np.asarray(z) - self.z0]


def column_extent(mask: np.ndarray, y0: int):
    """(first, last, count) of a mask's voxels along A-P (axis 1) for every (x, z) column; -1 where empty;
    indices offset by ``y0`` (the crop's origin)."""
    any_y = mask.any(axis=1)
    first = np.where(any_y, np.argmax(mask, axis=1) + y0, -1)
    last = np.where(any_y, mask.shape[1] - 1 - np.argmax(mask[:, ::-1, :], axis=1) + y0, -1)
    return first, last, mask.sum(axis=1)


@dataclass
class Lesion:
    """One lesion: its voxels inside the cord as a boolean crop of the RPI grid at ``origin``."""

    mask: np.ndarray
    origin: Tuple[int, int, int]
    full_shape: Tuple[int, int, int]

    @property
    def z_slices(self) -> np.ndarray:
        """RPI axial slices holding the lesion."""
        return np.nonzero(self.mask.any(axis=(0, 1)))[0] + self.origin[2]

    def sagittal(self, x: int) -> Optional[np.ndarray]:
        """The lesion's (A-P, S-I) plane at RPI sagittal slice ``x`` (crop coordinates), None outside."""
        i = x - self.origin[0]
        return self.mask[i] if 0 <= i < self.mask.shape[0] else None

    def plane(self, mid: Midsagittal) -> np.ndarray:
        """The blended midsagittal (A-P, S-I) plane of the lesion (crop coordinates)."""
        empty = np.zeros(self.mask.shape[1:], dtype=bool)
        a, b = (self.sagittal(s) for s in mid.slices)
        f = mid.factor
        return (1 - f) * (empty if a is None else a) + f * (empty if b is None else b)


def volume(lesion: Lesion, zooms) -> float:
    px, py, pz = zooms
    return np.sum(lesion.mask) * px * py * pz


def sct_measures(lesion: Lesion, ctx: CordContext) -> Dict[str, float]:
    """length, width, max equivalent diameter, max axial damage ratio, midsagittal length and width."""
    px, py, pz = ctx.zooms
    a3, asag = ctx.angles.angle_3d, ctx.angles.sagittal
    zs = lesion.z_slices
    local = zs - lesion.origin[2]
    areas = lesion.mask.sum(axis=(0, 1))[local]
    y_any = lesion.mask.any(axis=(0,))  # (A-P, S-I) of the crop
    widths = []
    for zl, z in zip(local, zs):
        ys = np.nonzero(y_any[:, zl])[0]
        widths.append((ys[-1] - ys[0] + 1) * py * np.cos(asag[z]))
    out = {
        "length [mm]": np.sum([pz / np.cos(a3[z]) for z in zs]),
        "width [mm]": max(widths),
        "max_equivalent_diameter [mm]": 2 * np.sqrt(max(
            max(n * np.cos(a3[z]) * px * py for n, z in zip(areas, zs)), 0.0) / np.pi),
        "max_axial_damage_ratio []": np.max([(n * px * py) / (ctx.area[z] * px * py) for n, z in zip(areas, zs)]),
    }
    out.update(midsagittal_extent(lesion, ctx))
    return out


def midsagittal_extent(lesion: Lesion, ctx: CordContext) -> Dict[str, float]:
    """Length and width of the lesion on the blended midsagittal plane (soft values weigh the voxels)."""
    if ctx.mid is None:
        return {"length_interpolated_midsagittal_slice [mm]": np.nan,
                "width_interpolated_midsagittal_slice [mm]": np.nan}
    _, py, pz = ctx.zooms
    asag = ctx.angles.sagittal
    plane = lesion.plane(ctx.mid)
    lengths, widths = [], []
    for zl in np.unique(np.nonzero(plane)[1]):
        z = zl + lesion.origin[2]
        column = plane[:, zl]
        values = column[column > 0]
        lengths.append(np.mean(values) * pz / np.cos(asag[z]))
        widths.append(py * np.cos(asag[z]) * np.sum(values))
    return {"length_interpolated_midsagittal_slice [mm]": np.sum(lengths),
            "width_interpolated_midsagittal_slice [mm]": max(widths) if widths else 0}


def image_stats(lesion: Lesion, image: np.ndarray) -> Tuple[float, float]:
    """Mean and (population) standard deviation of the image over the lesion's non-zero image voxels."""
    x0, y0, z0 = lesion.origin
    nx, ny, nz = lesion.mask.shape
    values = image[x0:x0 + nx, y0:y0 + ny, z0:z0 + nz][lesion.mask]
    values = values[values != 0]
    if values.size == 0:
        return np.nan, np.nan
    mean, std = float(np.mean(values)), float(np.std(values))
    if not (np.isfinite(mean) and np.isfinite(std)):  # float32 sums overflow (values near 3e38): use float64
        values = values.astype(np.float64)
        mean, std = float(np.mean(values)), float(np.std(values))
    return mean, std
