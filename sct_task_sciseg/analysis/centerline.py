"""The cord centreline and its angle to the slice normal, as SCT 7.3 computes them for sct_analyze_lesion.

SCT (``get_centerline`` with ``ParamCenterline(minmax=False)``: ``algo_fitting='bspline'``, ``smooth=20``):
the mean (x, y) voxel coordinate of the cord on every axial slice that holds cord, a smoothing B-spline of x(z)
and y(z) (``scipy.interpolate.splrep``, degree 3, or 1 with at most three slices; smoothing factor
``s = (n_slices / nz)² · smooth · pz / 3``), evaluated with its derivative on every slice 0..nz-1 (beyond the
cord the spline is extrapolated). The tangent (dx/dz · px, dy/dz · py, pz) gives the 3-D angle to the S-I axis
and, with x dropped, the angle of the centreline projected on the sagittal plane.

Where SCT fails: a cord on a single slice (``splrep`` needs two points) gives angles of 0 here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

SMOOTH = 20.0  # SCT's ParamCenterline default
SPLINE_DEGREE = 3


@dataclass(frozen=True)
class Angles:
    """Per axial slice (RPI z): angle of the centreline tangent to the S-I axis (radians)."""

    angle_3d: np.ndarray
    sagittal: np.ndarray
    fitted: bool  # False: fewer than two cord slices, angles set to 0

    @classmethod
    def flat(cls, nz: int) -> "Angles":
        return cls(np.zeros(nz), np.zeros(nz), False)


@dataclass(frozen=True)
class SliceSums:
    """Per axial slice (RPI z) of a mask: voxel count and the sums of its x and y indices (one pass)."""

    count: np.ndarray
    sum_x: np.ndarray
    sum_y: np.ndarray

    @classmethod
    def of(cls, mask: np.ndarray) -> "SliceSums":
        x, y, z = np.nonzero(mask)
        nz = mask.shape[2]
        return cls(np.bincount(z, minlength=nz), np.bincount(z, weights=x, minlength=nz),
                   np.bincount(z, weights=y, minlength=nz))

    def mean_x(self, z: int) -> float:
        """The slice's centre of mass along R-L (the same number as ``ndimage.center_of_mass``: integer sums)."""
        return self.sum_x[z] / self.count[z]


def slice_means(sums: SliceSums) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean x, mean y) over the axial slices that hold any voxel."""
    zs = np.nonzero(sums.count)[0]
    return zs.astype(float), sums.sum_x[zs] / sums.count[zs], sums.sum_y[zs] / sums.count[zs]


def bspline(z: np.ndarray, v: np.ndarray, z_ref: np.ndarray, smooth: float, pz: float):
    """SCT's ``curve_fitting.bspline``: (fitted values, first derivatives) on ``z_ref``."""
    from scipy import interpolate

    degree = SPLINE_DEGREE if len(z) > SPLINE_DEGREE else SPLINE_DEGREE - 2
    density = (float(len(z)) / len(z_ref)) ** 2
    s = density * smooth * pz / float(3)
    tck = interpolate.splrep(z, v, s=s, k=degree)
    return interpolate.splev(z_ref, tck, der=0), interpolate.splev(z_ref, tck, der=1)


def cord_angles(cord, zooms: Tuple[float, float, float], smooth: float = SMOOTH) -> Angles:
    """Angles of the fitted centreline of an RPI cord mask (or its :class:`SliceSums`) on every axial slice."""
    sums = cord if isinstance(cord, SliceSums) else SliceSums.of(cord)
    nz = len(sums.count)
    z, mx, my = slice_means(sums)
    if len(z) < 2:
        return Angles.flat(nz)
    px, py, pz = zooms
    z_ref = np.arange(nz)
    _, dx = bspline(z, mx, z_ref, smooth, pz)
    _, dy = bspline(z, my, z_ref, smooth, pz)
    # SCT normalises each tangent and takes its dot product with the z unit vector: that is pz / |t|
    angle_3d = np.arccos(pz / np.sqrt((dx * px) ** 2 + (dy * py) ** 2 + pz ** 2))
    sagittal = np.arccos(pz / np.sqrt(0.0 + (dy * py) ** 2 + pz ** 2))
    return Angles(angle_3d, sagittal, True)
