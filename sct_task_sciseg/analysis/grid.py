"""The analysis grid: masks brought exactly (permutation and flips only) to SCT's RPI orientation.

In RPI (nibabel axis codes L, A, S) array axis 0 runs from right to left, axis 1 from posterior to anterior
(dorsal → ventral) and axis 2 from inferior to superior, whatever the input's orientation; every measure is
computed there, so the 48 axis orientations of the same masks give the same numbers. Slice numbers are
reported in the input's own voxel indices, as SCT does (``rpi_slice_to_orig_orientation``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from ..io.orientation import Reorientation, sct_to_nib_axcodes

RPI_AXCODES = sct_to_nib_axcodes("RPI")
AXIS_NAMES = ("R-L", "P-A", "I-S")


def sct_zoom(zoom) -> float:
    """A header voxel size (stored as float32) as a float64 without the float32 digits: 0.8f → 0.8, as SCT's
    ``get_dimension`` rounds it (to one digit below the float32 spacing)."""
    z32 = np.float32(zoom)
    exponent = int(np.floor(np.log10(abs(float(np.spacing(z32))))))
    return round(float(z32), -exponent - 1)


@dataclass(frozen=True, eq=False)
class Grid:
    """An input voxel grid and its reorientation to RPI."""

    shape: Tuple[int, int, int]
    affine: np.ndarray
    zooms: Tuple[float, float, float]  # the input header's voxel sizes, read as SCT reads them (sct_zoom)
    reorientation: Reorientation

    @classmethod
    def of(cls, shape, affine: np.ndarray, zooms) -> "Grid":
        shape3 = tuple(int(s) for s in shape[:3])
        affine = np.asarray(affine, dtype=float)
        zooms3 = tuple(sct_zoom(z) for z in zooms[:3])
        return cls(shape3, affine, zooms3, Reorientation(affine, shape3, RPI_AXCODES))

    @property
    def rpi_shape(self) -> Tuple[int, int, int]:
        out = [0, 0, 0]
        for i, (axis, _flip) in enumerate(self.reorientation.forward):
            out[int(axis)] = self.shape[i]
        return out[0], out[1], out[2]

    @property
    def rpi_zooms(self) -> Tuple[float, float, float]:
        """(R-L, A-P, S-I) voxel sizes in mm."""
        return self.reorientation.zooms(self.zooms)

    @functools.cached_property
    def orientation(self) -> str:
        """The input's orientation in SCT's convention ("from" letters, e.g. ``RPI``)."""
        import nibabel as nib

        from ..io.orientation import OPPOSITE
        return "".join(OPPOSITE[c] for c in nib.aff2axcodes(self.affine))

    def to_rpi(self, data: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.reorientation.apply(np.asarray(data)))

    def from_rpi(self, data: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.reorientation.undo(data))

    def input_axis(self, rpi_axis: int) -> Tuple[int, bool]:
        """(input array axis, flipped?) of RPI axis ``rpi_axis``."""
        for i, (axis, flip) in enumerate(self.reorientation.forward):
            if int(axis) == rpi_axis:
                return i, bool(flip < 0)
        raise ValueError(f"no input axis maps to RPI axis {rpi_axis}")

    def input_index(self, rpi_axis: int, index):
        """A (possibly fractional) RPI slice number as the slice number along the same axis of the input."""
        if index is None or (isinstance(index, float) and np.isnan(index)):
            return index
        _, flipped = self.input_axis(rpi_axis)
        return (self.rpi_shape[rpi_axis] - 1 - index) if flipped else index

    def world_mm(self, rpi_point) -> Tuple[float, float, float]:
        """World (RAS+, mm) coordinates of a point given in RPI voxel coordinates."""
        affine = self.reorientation.reoriented_affine()
        x = affine @ np.append(np.asarray(rpi_point, dtype=float), 1.0)
        return float(x[0]), float(x[1]), float(x[2])


AFFINE_TOLERANCE_MM = 1e-3


def same_grid(ref, other, what: str) -> None:
    """Refuse ``other`` (a nibabel image) unless it has ``ref``'s shape and affine (within 1 µm)."""
    from ..errors import InputError

    if tuple(other.shape[:3]) != tuple(ref.shape[:3]):
        raise InputError(f"{what}: grid {tuple(other.shape[:3])} differs from the lesion mask's "
                         f"{tuple(ref.shape[:3])}; the masks must share one voxel grid")
    if not np.allclose(other.affine, ref.affine, atol=AFFINE_TOLERANCE_MM):
        raise InputError(f"{what}: voxel-to-world affine differs from the lesion mask's; the masks must share "
                         "one voxel grid (resample one onto the other)")
