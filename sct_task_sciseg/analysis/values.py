"""What a mask may hold before it is measured: exactly 0 and 1 (as SCT's ``sct_analyze_lesion`` requires of its
lesion mask), or, for a lesion probability map given with a threshold, finite values in [0, 1].

A refusal says in one line what was found, so the user knows what to do (threshold a probability map, binarise
a label map, repair NaN/Inf voxels).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import InputError


class MaskValueError(InputError):
    """A mask that cannot be measured; ``role`` names which input (``lesion mask``, ``cord mask``, ...)."""

    def __init__(self, role: str, message: str):
        super().__init__(message)
        self.role = role


def _finite_problem(data: np.ndarray) -> Optional[str]:
    if data.dtype.kind != "f":
        return None
    nan, inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
    if not (nan or inf):
        return None
    parts = [f"{n:,} {what} voxels" for n, what in ((nan, "NaN"), (inf, "infinite")) if n]
    return " and ".join(parts)


def binary_problem(data: np.ndarray) -> Optional[str]:
    """Why ``data`` is not a {0, 1} mask (None when it is one; an all-zero mask is one)."""
    if data.dtype.kind == "b":
        return None
    if data.dtype.kind in "iu":
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if lo >= 0 and hi <= 1:
            return None
        levels = np.unique(data)
        shown = ", ".join(str(int(v)) for v in levels[:6]) + (", ..." if levels.size > 6 else "")
        return (f"integer values {{{shown}}} ({levels.size:,} distinct): a label map? keep the lesion label "
                "(e.g. fslmaths/sct_maths -bin) first")
    finite = _finite_problem(data)
    if finite:
        return f"{finite}: repair or mask them first"
    if np.all((data == 0) | (data == 1)):
        return None
    levels = np.unique(data)
    lo, hi = float(levels[0]), float(levels[-1])
    if lo >= 0 and hi <= 1:
        return (f"values in [{lo:g}, {hi:g}] with {levels.size:,} distinct levels: a probability map? threshold "
                "it first (or give -soft-threshold T)")
    integer = bool(np.all(levels == np.round(levels)))
    what = "integer values" if integer else "non-integer values"
    return f"{what} in [{lo:g}, {hi:g}] with {levels.size:,} distinct levels; a mask holds only 0 and 1"


def check_binary(data: np.ndarray, role: str) -> None:
    problem = binary_problem(data)
    if problem:
        raise MaskValueError(role, f"{role} is not binary: {problem}")


def check_probability(data: np.ndarray, role: str) -> None:
    """A probability map: finite values in [0, 1] (a {0, 1} mask is one too)."""
    finite = _finite_problem(data) if data.dtype.kind == "f" else None
    if finite:
        raise MaskValueError(role, f"{role}: {finite}: repair or mask them first")
    if data.size and (float(data.min()) < 0 or float(data.max()) > 1):
        raise MaskValueError(role, f"{role}: values in [{float(data.min()):g}, {float(data.max()):g}]; a "
                                   "probability map holds values in [0, 1]")


def check_finite(data: np.ndarray, role: str) -> None:
    """An image whose statistics are taken: finite, and small enough that float64 sums stay finite."""
    finite = _finite_problem(data)
    if finite:
        raise MaskValueError(role, f"{role} holds {finite}; its mean and std in the lesions would not be numbers")
    if data.dtype.kind == "f" and data.size and float(np.max(np.abs(data))) > 1e150:
        raise MaskValueError(role, f"{role} holds values up to {float(np.max(np.abs(data))):.3g}; its statistics "
                                   "would overflow")
