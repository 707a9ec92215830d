"""Scan geometry for QC: image and masks in the closest canonical (RAS) orientation, the cord's centreline,
and the finding's connected components."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Sequence, Tuple

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation
from scipy import ndimage

from ..io.components import LESION_CONNECTIVITY, label_components

CENTRELINE_SMOOTH_MM = 3.0


@dataclass(frozen=True)
class Roles:
    """Which masks QC draws as the structure (red, SCIseg: the cord) and the finding (cyan, the lesion), and
    what to call them."""

    structure: str
    finding: str
    structure_title: str
    finding_title: str

    @classmethod
    def of(cls, scheme) -> "Roles":
        """The roles of a task's :class:`~sct_task_sciseg.tasks.LabelScheme`."""
        parent = scheme.output(scheme.parent)
        finding = scheme.output(scheme.finding) if scheme.finding else None
        return cls(parent.name, finding.name if finding else "", parent.display,
                   finding.display if finding else "finding")


@dataclass
class CanonicalScan:
    """Image and masks in the closest canonical orientation (array axes point to R, A, S)."""

    image: np.ndarray  # float32 (X, Y, Z)
    cord: np.ndarray  # bool
    lesion: np.ndarray  # bool
    zooms: Tuple[float, float, float]
    ornt: np.ndarray  # nibabel orientation from the input array to this one
    input_shape: Tuple[int, int, int]

    def input_index(self, axis: int, index: int) -> Tuple[int, int]:
        """(input array axis, index on it) of canonical ``axis`` at ``index``."""
        src = int(np.nonzero(self.ornt[:, 0] == axis)[0][0])
        flip = self.ornt[src, 1] < 0
        return src, (self.input_shape[src] - 1 - index) if flip else index


def as_array3d(obj, dtype=None) -> np.ndarray:
    """A 3-D array of a nibabel image or array (more axes: the first volume; fewer: trailing axes added)."""
    arr = np.asarray(obj.dataobj if hasattr(obj, "dataobj") else obj)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    while arr.ndim > 3:  # 4-D: first volume
        arr = arr[..., 0]
    while arr.ndim < 3:
        arr = arr[..., None]
    return arr


def as_mask3d(obj, shape) -> np.ndarray:
    """A 3-D boolean mask of an image or array (None: an empty mask of ``shape``)."""
    if obj is None:
        return np.zeros(shape, bool)
    arr = as_array3d(obj)
    if arr.shape != tuple(shape):
        raise ValueError(f"mask shape {arr.shape} differs from image shape {tuple(shape)}")
    return arr >= 0.5 if arr.dtype.kind == "f" else arr > 0


def canonical_scan(image: nib.spatialimages.SpatialImage, masks: Mapping[str, object],
                   roles: Roles) -> CanonicalScan:
    """Reorient image and masks to RAS. ``roles`` names the structure (drawn red) and the finding (cyan)
    among ``masks`` (arrays or images on the image grid; a missing finding is drawn as none)."""
    data = as_array3d(image, np.float32)
    ornt = io_orientation(image.affine)
    can_affine = image.affine @ inv_ornt_aff(ornt, data.shape)
    zooms = tuple(float(z) for z in np.sqrt((can_affine[:3, :3] ** 2).sum(0)))

    def reorient(a):
        return np.ascontiguousarray(apply_orientation(a, ornt))

    cord = as_mask3d(masks.get(roles.structure), data.shape)
    lesion = as_mask3d(masks.get(roles.finding), data.shape)
    return CanonicalScan(reorient(np.nan_to_num(data)), reorient(cord), reorient(lesion), zooms, ornt,
                         tuple(data.shape))


def cord_centreline(cord: np.ndarray, zooms: Sequence[float]) -> Tuple[np.ndarray, np.ndarray, bool]:
    """Per axial slice (canonical z) the cord's centre (x, y) in voxels, interpolated where the cord is absent,
    lightly smoothed. Without any cord: the centre of the field of view (third value False)."""
    nx, ny, nz = cord.shape
    area = cord.sum((0, 1)).astype(float)
    present = np.nonzero(area)[0]
    if present.size == 0:
        return np.full(nz, (nx - 1) / 2.0), np.full(nz, (ny - 1) / 2.0), False
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (np.arange(nx) @ cord.sum(1)) / area
        cy = (np.arange(ny) @ cord.sum(0)) / area
    z = np.arange(nz)
    cx = np.interp(z, present, cx[present])
    cy = np.interp(z, present, cy[present])
    sigma = CENTRELINE_SMOOTH_MM / max(zooms[2], 1e-6)
    if nz > 3 and sigma > 0.5:
        cx = ndimage.gaussian_filter1d(cx, sigma, mode="nearest")
        cy = ndimage.gaussian_filter1d(cy, sigma, mode="nearest")
    return cx, cy, True


@dataclass
class LesionComponent:
    number: int  # 1 = largest
    voxels: np.ndarray  # (n, 3) canonical indices
    best_z: int  # slice with the largest cross-section

    @property
    def z_values(self) -> np.ndarray:
        return np.unique(self.voxels[:, 2])


def lesion_components(lesion: np.ndarray) -> List[LesionComponent]:
    """3-D connected components (18-connectivity, as the lesion analysis and SCT count them), largest first."""
    labels, n = label_components(lesion, LESION_CONNECTIVITY)
    if n == 0:
        return []
    coords = np.argwhere(labels)
    lab = labels[tuple(coords.T)]
    order = np.argsort(lab, kind="stable")
    coords, lab = coords[order], lab[order]
    splits = np.searchsorted(lab, np.arange(1, n + 1))
    groups = np.split(coords, splits[1:])
    groups.sort(key=len, reverse=True)
    comps = []
    for i, g in enumerate(groups, 1):
        zs, counts = np.unique(g[:, 2], return_counts=True)
        comps.append(LesionComponent(i, g, int(zs[np.argmax(counts)])))
    return comps
