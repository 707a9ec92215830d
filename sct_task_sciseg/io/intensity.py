"""Intensities that a z-score normalisation can work with, whatever their global scale.

nnU-Net's ``ZScoreNormalization`` computes the mean and standard deviation in float32: intensities beyond
~1e18 overflow (every z-score becomes 0 or NaN), and below ~1e-8 its ``max(std, 1e-8)`` floor flattens the
image. Multiplying an image by an exact power of two changes no z-score (every sum, square, square root and
quotient nnU-Net takes scales exactly), so :func:`power_of_two_scale` brings the peak intensity into a safe
range without changing anything for ordinary scans (their scale is 1).

Some images cannot be normalised meaningfully at any scale: when a few voxels (< 0.1 %) carry nearly all of
the variance, the z-scored anatomy is squeezed to a sliver of its usual contrast and the masks come out
empty or wrong. :func:`normalisation_problem` names that case.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

#: Peak intensities in [2**SAFE_LOW, 2**SAFE_HIGH] go to nnU-Net unchanged; others are scaled to [2**10, 2**11).
SAFE_LOW, SAFE_HIGH, TARGET = -8, 24, 10
#: The central 99.8 % of the voxels of real scans spans 3.8-6.9 standard deviations (shared test volumes);
#: below 2, the standard deviation is dominated by a few extreme voxels.
MIN_BULK_SPREAD = 2.0
BULK_PERCENTILES = (0.1, 99.9)
SAMPLE_VOXELS = 1 << 22  # percentiles from an evenly strided sample of at most this many voxels
CHUNK = 1 << 20


def peak(data: np.ndarray) -> float:
    return max(abs(float(data.max())), abs(float(data.min())))


def power_of_two_scale(data: np.ndarray) -> float:
    """1.0 for ordinary intensities; else the power of two that brings the peak into [2**10, 2**11)."""
    top = peak(data)
    if top == 0.0:
        return 1.0
    exponent = math.frexp(top)[1] - 1  # top in [2**exponent, 2**(exponent + 1))
    if SAFE_LOW <= exponent <= SAFE_HIGH:
        return 1.0
    return math.ldexp(1.0, TARGET - exponent)


def _std(flat: np.ndarray) -> float:
    """Standard deviation in float64, by chunks (no full-size float64 copy)."""
    n = flat.size
    mean = sum(float(flat[i:i + CHUNK].sum(dtype=np.float64)) for i in range(0, n, CHUNK)) / n
    ss = sum(float(np.square(flat[i:i + CHUNK].astype(np.float64) - mean).sum()) for i in range(0, n, CHUNK))
    return math.sqrt(ss / n)


def normalisation_problem(data: np.ndarray) -> Optional[str]:
    """Why a z-score of ``data`` (finite, not constant) would be meaningless, or None when it is fine."""
    flat = data.reshape(-1)
    std = _std(flat)
    if not math.isfinite(std) or std == 0.0:
        return "intensities cannot be normalised (zero or overflowing standard deviation)"
    sample = flat[:: max(1, flat.size // SAMPLE_VOXELS)]
    low, high = np.percentile(sample, BULK_PERCENTILES)
    if (float(high) - float(low)) / std < MIN_BULK_SPREAD:
        return (f"intensities cannot be normalised: a few extreme voxels dominate them (peak {peak(data):.3g}, "
                f"while 99.8 % of the voxels lie in [{float(low):.4g}, {float(high):.4g}]); check or clip the "
                "image")
    return None
