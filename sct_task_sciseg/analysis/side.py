"""Which side of the cord a lesion lies on, from the cord itself (no template needed).

On each axial slice the cord's centre is the mean R-L index of its voxels; a lesion voxel right of it counts to
the right, left of it to the left, exactly on it half to each. Shares are of the lesion's voxels (its volume).
In RPI, array axis 0 runs from right to left: a smaller index is further right.
"""
from __future__ import annotations

from typing import Dict

import numpy as np


def side_shares(mask: np.ndarray, origin, sum_x: np.ndarray, count: np.ndarray) -> Dict[str, float]:
    """``right_share [%]`` and ``left_share [%]`` of a lesion crop at ``origin`` (RPI) against the cord's
    per-slice x sums and voxel counts; NaN where a lesion slice has no cord."""
    x, _, z = np.nonzero(mask)
    if not x.size:
        return {"right_share [%]": np.nan, "left_share [%]": np.nan}
    x, z = x + origin[0], z + origin[2]
    n = count[z]
    if np.any(n == 0):
        return {"right_share [%]": np.nan, "left_share [%]": np.nan}
    # compare x·n with Σx exactly (integers): no rounding decides a voxel on the centre
    diff = x.astype(np.int64) * n.astype(np.int64) - np.rint(sum_x[z]).astype(np.int64)
    right = np.count_nonzero(diff < 0) + 0.5 * np.count_nonzero(diff == 0)
    left = np.count_nonzero(diff > 0) + 0.5 * np.count_nonzero(diff == 0)
    return {"right_share [%]": 100.0 * right / x.size, "left_share [%]": 100.0 * left / x.size}
