"""Measured plausibility of one segmentation: is this a spinal cord, in one piece, of a human size, and was the
model sure of it? Flags for the QC report (flagged rows first) and one console warning for an output that is
likely unusable (a T1w volume given to the T2w model, a scan without a cord, ...).

Measures (all on the input grid, axial = the image axis closest to S/I):

* ``csa_mm2``: cord cross-sectional area per axial slice (voxel count × in-plane voxel area; not corrected for
  the cord's angle, which only enlarges it). Normal range :data:`CSA_RANGE_MM2`: 40–100 mm², the adult cervical
  cord (C1–C7 means 60–90 mm² in Kato et al. 2012, AJNR 33:1025, and Papinutto et al. 2020, NeuroImage Clin
  25:102104; below 40 mm² only in the thoracic cord or severe atrophy). Flag ``cord-csa-out-of-range`` when more
  than :data:`CSA_OUTSIDE_SHARE` of the cord's slices fall outside it.
* ``cord_pieces`` (3-D, 26-connectivity), ``cord_gap_slices`` (slices without cord between slices with cord),
  ``split_slices`` (slices where the cord is in several pieces): flag ``cord-discontinuous`` when the cord is
  more than one piece, has a gap, or is split on more than :data:`SPLIT_SHARE` of its slices.
* ``cord_coverage``: share of the axial slices holding cord (the cord crosses the whole field of view of a
  spinal-cord scan): flag ``cord-short`` below :data:`MIN_COVERAGE`.
* ``lesion_count``: flag ``many-lesions`` above :data:`MAX_LESIONS` (a spinal cord injury is usually one lesion
  at the injury level; many small components are more likely noise). ``lesion-outside-cord`` is in
  :mod:`.stats`.
* ``uncertain``: share of an output's voxels whose probability lies in
  :data:`~sct_task_sciseg.pipeline.postprocess.UNCERTAIN_BAND` (from the same inference). Flag
  ``low-confidence`` above :data:`MAX_UNCERTAIN` (cord) or :data:`MAX_UNCERTAIN_LESION` (lesions of at least
  :data:`MIN_LESION_VOXELS` voxels; a small lesion is mostly boundary).

:func:`likely_unusable`: ``empty-cord``, or at least two of these measured flags.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import nibabel as nib
import numpy as np

from ..io.components import label_components
from .geometry import Roles

CSA_RANGE_MM2 = (40.0, 100.0)
CSA_OUTSIDE_SHARE = 0.5
SPLIT_SHARE = 0.10
MIN_COVERAGE = 0.5
MAX_LESIONS = 3
MAX_UNCERTAIN = 0.4
MAX_UNCERTAIN_LESION = 0.6
MIN_LESION_VOXELS = 20

FLAGS = {
    "cord-csa-out-of-range": f"over {CSA_OUTSIDE_SHARE:.0%} of the cord's slices have a cross-sectional area "
                             f"outside {CSA_RANGE_MM2[0]:g}–{CSA_RANGE_MM2[1]:g} mm² (adult cervical cord)",
    "cord-discontinuous": f"the cord is in several pieces, has slices missing, or is split on over "
                          f"{SPLIT_SHARE:.0%} of its slices",
    "cord-short": f"the cord is on fewer than {MIN_COVERAGE:.0%} of the axial slices",
    "many-lesions": f"more than {MAX_LESIONS} lesions",
    "low-confidence": f"over {MAX_UNCERTAIN:.0%} of the cord (or {MAX_UNCERTAIN_LESION:.0%} of the lesion) "
                      f"voxels have an uncertain probability (0.2–0.8)",
}
SEVERITY = {"cord-csa-out-of-range": "bad", "cord-discontinuous": "bad", "cord-short": "warn",
            "many-lesions": "warn", "low-confidence": "bad"}  # how the QC report colours each flag
UNUSABLE_AFTER = 2  # measured flags that make an output likely unusable


def _as_mask(obj, shape=None) -> np.ndarray:
    if obj is None:
        return np.zeros(shape, bool)
    arr = np.asarray(obj.dataobj if hasattr(obj, "dataobj") else obj)
    arr = arr.reshape(arr.shape[:3]) if arr.ndim > 3 and all(n == 1 for n in arr.shape[3:]) else arr
    return arr >= 0.5 if arr.dtype.kind == "f" else arr > 0


def _axial_axis(affine: np.ndarray) -> int:
    codes = nib.aff2axcodes(affine)
    return next(i for i, c in enumerate(codes) if c in "SI")


def _slice_pieces(plane: np.ndarray) -> int:
    from scipy import ndimage
    return int(ndimage.label(plane, structure=np.ones((3, 3), bool))[1])


def plausibility(masks: Mapping[str, object], affine: np.ndarray, roles: Roles,
                 uncertain: Optional[Mapping[str, float]] = None) -> dict:
    """The measures above and the flags they raise (``{"flags": [...], ...}``); ``uncertain`` is
    :attr:`Segmentation.uncertain` (no confidence flag without it)."""
    cord = _as_mask(masks[roles.structure])
    lesion = _as_mask(masks.get(roles.finding), cord.shape)
    affine = np.asarray(affine, float)
    axis = _axial_axis(affine)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    pixel_mm2 = float(np.prod([z for i, z in enumerate(zooms) if i != axis]))
    per_slice = np.moveaxis(cord, axis, -1)
    counts = per_slice.sum(axis=(0, 1))
    present = np.nonzero(counts)[0]
    out = {"cord_coverage": round(len(present) / max(1, cord.shape[axis]), 3)}
    flags = []
    if len(present):
        inside = np.arange(present[0], present[-1] + 1)
        csa = counts[inside] * pixel_mm2
        csa_on = csa[csa > 0]
        lo, hi = CSA_RANGE_MM2
        outside_share = float(np.mean((csa_on < lo) | (csa_on > hi)))
        split = sum(_slice_pieces(per_slice[:, :, k]) > 1 for k in present)
        out.update(csa_median_mm2=round(float(np.median(csa_on)), 1), csa_min_mm2=round(float(csa_on.min()), 1),
                   csa_max_mm2=round(float(csa_on.max()), 1), csa_outside_share=round(outside_share, 3),
                   cord_pieces=label_components(cord, 3)[1], cord_gap_slices=int((csa == 0).sum()),
                   split_slices=int(split), split_share=round(split / len(present), 3))
        if outside_share > CSA_OUTSIDE_SHARE:
            flags.append("cord-csa-out-of-range")
        if out["cord_pieces"] > 1 or out["cord_gap_slices"] or out["split_share"] > SPLIT_SHARE:
            flags.append("cord-discontinuous")
        if out["cord_coverage"] < MIN_COVERAGE:
            flags.append("cord-short")
    n_lesions = label_components(lesion, 2)[1]
    if n_lesions > MAX_LESIONS:
        flags.append("many-lesions")
    if uncertain:
        out["uncertain"] = dict(uncertain)
        u_cord = float(uncertain.get(roles.structure, 0.0))
        u_lesion = float(uncertain.get(roles.finding, 0.0)) if lesion.sum() >= MIN_LESION_VOXELS else 0.0
        if u_cord > MAX_UNCERTAIN or u_lesion > MAX_UNCERTAIN_LESION:
            flags.append("low-confidence")
    out["flags"] = flags
    return out


def scan_checks(masks: Mapping[str, object], affine: np.ndarray, roles: Roles,
                uncertain: Optional[Mapping[str, float]] = None) -> dict:
    """:func:`plausibility` with the geometric flags of :func:`.stats.lesion_stats` (empty cord, lesion outside
    the cord, field-of-view edges) in front: every flag of a scan but ``lesion-in-control``."""
    from .stats import lesion_stats

    found = plausibility(masks, affine, roles, uncertain)
    found["flags"] = list(lesion_stats(masks, affine, roles)["flags"]) + found["flags"]
    return found


def likely_unusable(flags: Sequence[str]) -> bool:
    """``empty-cord``, or at least :data:`UNUSABLE_AFTER` of the measured plausibility flags."""
    return "empty-cord" in flags or sum(f in FLAGS or f == "lesion-outside-cord" for f in flags) >= UNUSABLE_AFTER


__all__ = ["FLAGS", "SEVERITY", "likely_unusable", "plausibility", "scan_checks"]
