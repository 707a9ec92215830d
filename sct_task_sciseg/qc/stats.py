"""QC numbers of one scan: structure volume, finding count and volumes, and flags for the reviewer."""
from __future__ import annotations

from typing import Mapping

import nibabel as nib
import numpy as np

from ..io.components import LESION_CONNECTIVITY, component_sizes, label_components
from ..io.orientation import OPPOSITE
from .geometry import Roles, as_array3d, as_mask3d


def _fov_edges(mask: np.ndarray, codes, skip_si: bool) -> list:
    """The sides (axis codes) of the field of view that ``mask`` touches."""
    found = []
    for axis, code in enumerate(codes):
        if code is None or mask.shape[axis] < 3 or (skip_si and code in "SI"):
            continue
        if mask.take(0, axis=axis).any():
            found.append(OPPOSITE[code])  # index 0 lies at the side opposite to the axis direction
        if mask.take(-1, axis=axis).any():
            found.append(code)
    return found


def lesion_stats(masks: Mapping[str, object], affine: np.ndarray, roles: Roles) -> dict:
    """Structure ("cord") volume, findings ("lesions": 3-D components, 18-connectivity as in SCT) and reviewer flags.

    ``masks``: images or arrays on one grid, keyed by output name; ``roles`` names the structure and the
    finding among them (a missing finding means none). The keys of the result say cord/lesion whatever
    the task calls them.
    Flags: ``empty-cord``, ``lesion-outside-cord``, ``cord-at-fov-edge`` (R/L or A/P face only: the cord always
    leaves through S/I), ``lesion-at-fov-edge`` (any face: the lesion may continue outside the image).
    ``lesion-in-control`` needs the participant list and is added by :func:`write_qc`.
    """
    cord_in = masks.get(roles.structure)
    if cord_in is None:
        raise ValueError(f"masks needs a {roles.structure!r} entry")
    cord_arr = as_array3d(cord_in)
    cord = as_mask3d(cord_arr, cord_arr.shape)
    lesion = as_mask3d(masks.get(roles.finding), cord.shape)
    affine = np.asarray(affine, float)
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    labels, n = label_components(lesion, LESION_CONNECTIVITY)
    sizes = component_sizes(labels, n)
    outside = int(np.count_nonzero(lesion & ~cord))

    codes = nib.aff2axcodes(affine)
    cord_edges = _fov_edges(cord, codes, skip_si=True)
    lesion_edges = _fov_edges(lesion, codes, skip_si=False)
    n_cord = int(np.count_nonzero(cord))
    flags = []
    if n_cord == 0:
        flags.append("empty-cord")
    if outside:
        flags.append("lesion-outside-cord")
    if cord_edges:
        flags.append("cord-at-fov-edge")
    if lesion_edges:
        flags.append("lesion-at-fov-edge")
    vols = sorted((float(s) * voxel_mm3 for s in sizes), reverse=True)
    return {
        "voxel_volume_mm3": round(voxel_mm3, 6),
        "cord_voxels": n_cord,
        "cord_volume_mm3": round(n_cord * voxel_mm3, 2),
        "lesion_count": int(n),
        "lesion_voxels": int(np.count_nonzero(lesion)),
        "lesion_volume_mm3": round(float(sizes.sum()) * voxel_mm3, 2),
        "lesion_volumes_mm3": [round(v, 2) for v in vols],
        "lesion_outside_cord_voxels": outside,
        "cord_fov_edges": cord_edges,
        "lesion_fov_edges": lesion_edges,
        "flags": flags,
    }
