"""Regions of interest and tile sizes: the body (not air) in an image, its bounding box, -fast's tiles."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

LARGE_TILE_FACTOR = 3  # "large" tiles hold at most this many training patches' worth of voxels


def body_mask(image: np.ndarray, block: int = 4) -> Optional[np.ndarray]:
    """Voxels of ``image`` (one channel, any intensity scale) that are in the body rather than air.

    Works on ``block``³ block means (noise averages out). Air is the noise floor: blocks within 5 % of the
    robust intensity range (1st to 99th percentile) above its bottom. When fewer than 5 % of the blocks are
    that dark there is no air (the field of view is inside the body) and None is returned. The thresholds
    scale with the image, so z-scored and raw intensities give the same mask. One block of margin.
    """
    from scipy import ndimage

    shape = np.array(image.shape)
    pad = (-shape) % block
    x = np.pad(image.astype(np.float32, copy=False), [(0, int(p)) for p in pad], mode="edge")
    s = np.array(x.shape) // block
    means = x.reshape(s[0], block, s[1], block, s[2], block).mean(axis=(1, 3, 5))
    lo, hi = (float(v) for v in np.percentile(means, [1, 99]))
    if not hi > lo:
        return None
    coarse = means > lo + 0.05 * (hi - lo)
    if (~coarse).mean() < 0.05:
        return None
    labels, n = ndimage.label(coarse)
    if n > 1:  # drop specks (noise, ghosts): keep components with ≥ 1 % of the largest one's blocks
        sizes = np.bincount(labels.ravel())[1:]
        coarse = np.isin(labels, np.nonzero(sizes >= 0.01 * sizes.max())[0] + 1)
    coarse = ndimage.binary_dilation(coarse, iterations=1)  # one block of margin
    if coarse.all():
        return None
    full = coarse.repeat(block, 0).repeat(block, 1).repeat(block, 2)
    return full[: shape[0], : shape[1], : shape[2]]


def bounding_box(mask: np.ndarray, margin: Sequence[int]) -> Tuple[slice, ...]:
    idx = [np.nonzero(mask.any(axis=tuple(j for j in range(mask.ndim) if j != i)))[0] for i in range(mask.ndim)]
    return tuple(slice(max(0, int(ix[0]) - m), min(n, int(ix[-1]) + 1 + m))
                 for ix, m, n in zip(idx, margin, mask.shape))


def large_tile(extent: Sequence[int], patch: Sequence[int], strides: Sequence[int],
               factor: float = LARGE_TILE_FACTOR) -> List[int]:
    """Tile size for the -fast mode: fitted to the image (less padding), grown up to ``factor`` patches."""
    def up(n, m):
        return int(-(-int(n) // m) * m)
    tile = [max(min(up(e, m), p), 2 * m) for e, p, m in zip(extent, patch, strides)]
    budget = factor * int(np.prod(patch))
    while True:
        grow = [i for i in range(len(tile)) if up(extent[i], strides[i]) > tile[i]]
        if not grow:
            return tile
        i = max(grow, key=lambda j: up(extent[j], strides[j]) / tile[j])
        candidate = list(tile)
        candidate[i] = min(up(extent[i], strides[i]), tile[i] * 2)
        if int(np.prod(candidate)) > budget:
            return tile
        tile = candidate
