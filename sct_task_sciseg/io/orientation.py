"""Orientation in SCT's convention, and exact (permute/flip only) reorientation with nibabel.

SCT names each axis by the side it comes *from*: SCT's ``RPI`` means x runs from Right to Left, y from
Posterior to Anterior, z from Inferior to Superior — nibabel's axis codes ``('L', 'A', 'S')``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}  # SCT "from" letter ↔ nibabel code


def sct_to_nib_axcodes(sct: str) -> Tuple[str, str, str]:
    """SCT orientation string ("RPI") → nibabel axis codes (("L", "A", "S"))."""
    s = sct.strip().upper()
    axes = {"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}
    if len(s) != 3 or set(s) - set(axes) or len({axes[c] for c in s}) != 3:
        raise ValueError(f"invalid orientation {sct!r}: three letters, one of RL, one of AP, one of SI")
    return tuple(OPPOSITE[c] for c in s)  # type: ignore[return-value]


class Reorientation:
    """Permutation/flip that brings an array with ``affine`` to nibabel ``axcodes`` and back."""

    def __init__(self, affine: np.ndarray, shape: Tuple[int, ...], axcodes: Tuple[str, str, str]):
        self.source = io_orientation(affine)
        self.forward = ornt_transform(self.source, axcodes2ornt(axcodes))
        self.backward = ornt_transform(axcodes2ornt(axcodes), self.source)
        self.shape = tuple(shape[:3])
        self.affine = affine

    def apply(self, data: np.ndarray) -> np.ndarray:
        return apply_orientation(data, self.forward)

    def undo(self, data: np.ndarray) -> np.ndarray:
        return apply_orientation(data, self.backward)

    def zooms(self, zooms: Tuple[float, ...]) -> Tuple[float, float, float]:
        """Voxel sizes of the reoriented array (axis ``forward[i, 0]`` takes input axis ``i``'s size)."""
        out = [0.0, 0.0, 0.0]
        for i, (axis, _flip) in enumerate(self.forward):
            out[int(axis)] = float(zooms[i])
        return out[0], out[1], out[2]

    def reoriented_affine(self) -> np.ndarray:
        return self.affine @ inv_ornt_aff(self.forward, self.shape)
