"""Lesion morphometrics of one scan: the entry points and the result.

Order of work, as SCT 7.3's ``sct_analyze_lesion``: reorient to RPI; label the connected components of the
*raw* lesion mask (scikit-image ``connectivity=2`` in SCT = 18-neighbourhood, the default here); keep the
voxels inside the cord; fit the cord centreline; choose the midsagittal slice from the largest lesion; measure
each lesion. Where SCT crashes, this goes on and says so in the row's ``note``: components entirely outside the
cord are counted (summary) and get no row; the inside part of the others is analysed and their outside voxels
reported; the ids are renumbered 1..n over the analysed lesions (unchanged whenever SCT itself runs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import nibabel as nib
import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..io.components import LESION_CONNECTIVITY, label_components
from .bridges import Bridges, measure_bridges
from .centerline import Angles, SliceSums, cord_angles
from .measures import CordContext, Lesion, image_stats, sct_measures, volume
from .anatomy import Anatomy
from .grid import Grid, same_grid
from .midsagittal import Midsagittal, at_slice, choose
from .lesion_rows import lesion_row, nli_row, summary_of, zero_row
from .table import columns as table_columns
from .values import check_binary, check_finite, check_probability

SCT_CONNECTIVITY = LESION_CONNECTIVITY  # 18-neighbourhood, as SCT 7.3 labels lesions


@dataclass
class LesionDetail:
    """One analysed lesion in RPI: its crop, raw-component bookkeeping, and its bridges (for QC drawing)."""

    label: int
    lesion: Lesion
    bridges: Bridges
    voxels_outside: int


@dataclass
class LesionAnalysis:
    """The result: ``rows`` (one per lesion, or one zero-lesion row) keyed by ``columns``, the per-scan
    ``summary``, the lesion-id image on the input grid, and the RPI geometry QC draws from."""

    rows: List[Dict[str, object]]
    columns: List[str]
    summary: Dict[str, object]
    label_img: nib.Nifti1Image
    grid: Grid
    lesions: List[LesionDetail] = field(default_factory=list)
    cord: Optional[np.ndarray] = None  # RPI boolean
    midsagittal: Optional[Midsagittal] = None
    parameters: Dict[str, object] = field(default_factory=dict)
    sources: Dict[str, str] = field(default_factory=dict)
    sheets: Dict[str, tuple] = field(default_factory=dict)  # -f: SCT's sheet name → (columns, rows)

    @property
    def lesion_count(self) -> int:
        return int(self.summary["lesion_count"])


def _data(img) -> np.ndarray:
    data = np.asanyarray(img.dataobj)
    return data.reshape(data.shape[:3]) if data.ndim == 4 and data.shape[3] == 1 else data


def _bbox(mask: np.ndarray):
    """Slices of the bounding box of a 3-D mask (empty slices for an empty mask); one pass over the mask."""
    hit_z = np.nonzero(mask.any(axis=(0, 1)))[0]
    if not hit_z.size:
        return slice(0, 0), slice(0, 0), slice(0, 0)
    zs = slice(int(hit_z[0]), int(hit_z[-1]) + 1)
    slab = mask[:, :, zs]
    hit_x, hit_y = np.nonzero(slab.any(axis=(1, 2)))[0], np.nonzero(slab.any(axis=(0, 2)))[0]
    return slice(int(hit_x[0]), int(hit_x[-1]) + 1), slice(int(hit_y[0]), int(hit_y[-1]) + 1), zs


def _relabel(lesion: np.ndarray, cord: Optional[np.ndarray], connectivity: int):
    """(ids 1..n of the analysed lesions inside the cord, on the lesion mask's bounding box; the box; voxels
    outside per analysed id; components wholly outside; voxels outside in total)."""
    box = _bbox(lesion)
    if not lesion[box].size:
        return np.zeros((0, 0, 0), dtype=np.int32), box, [], 0, 0
    raw, n = label_components(lesion[box], connectivity)
    inside = raw if cord is None else np.where(cord[box], raw, 0)
    n_in = np.bincount(inside.ravel(), minlength=n + 1)
    n_all = np.bincount(raw.ravel(), minlength=n + 1)
    kept = [k for k in range(1, n + 1) if n_in[k]]
    lookup = np.zeros(n + 1, dtype=np.int32)
    lookup[kept] = np.arange(1, len(kept) + 1)
    outside = [int(n_all[k] - n_in[k]) for k in kept]
    return lookup[inside], box, outside, n - len(kept), int(n_all[1:].sum() - n_in[1:].sum())


@dataclass(frozen=True)
class Options:
    """What SCT 7.3's ``sct_analyze_lesion`` options and this package's additions ask for (all optional).

    ``nli_slice``: SCT's ``-nli-slice`` (input index along the S-I axis); ``template``: a loaded ``-f`` folder
    (:func:`.atlas.load_template`); ``levels_img``: a labelled cord (``-levels``) whose levels the rows get;
    ``level_type``: ``vertebral``/``spinal`` (default: from the file name); ``soft_threshold``: the lesion input
    is a probability map, thresholded at ``>= T``; ``atlas_per_slice``: SCT's ``-perslice 1`` for the sheets."""

    nli_slice: Optional[int] = None
    template: object = None
    levels_img: object = None
    level_type: Optional[str] = None
    soft_threshold: Optional[float] = None
    atlas_per_slice: bool = False  # SCT's -perslice: -f sheets per axial slice instead of per level


def _lesion_input(lesion_img, opts: Options):
    """(binary lesion mask, probability map or None) on the input grid, after the value checks."""
    data = _data(lesion_img)
    if opts.soft_threshold is None:
        check_binary(data, "lesion mask")
        return data != 0, None
    if not 0 < opts.soft_threshold <= 1:
        raise InputError(f"-soft-threshold {opts.soft_threshold:g}: must be in (0, 1]")
    check_probability(data, "lesion probability map")
    prob = np.asarray(data, dtype=np.float64)
    return prob >= opts.soft_threshold, prob


def _nli_z(grid: Grid, nli_slice: int, has_cord: bool) -> int:
    axis, _ = grid.input_axis(2)
    if not has_cord:
        raise InputError("-nli-slice needs the cord mask (-s): the A-P diameter is measured on it")
    if not 0 <= nli_slice < grid.shape[axis]:
        raise InputError(f"-nli-slice {nli_slice} is out of range for the S-I dimension of the input "
                         f"(0 to {grid.shape[axis] - 1})")
    return int(grid.input_index(2, nli_slice))


def analyze_lesions(lesion_img, cord_img=None, image_img=None, perslice: bool = False, *,
                    connectivity: int = SCT_CONNECTIVITY, image_name: str = "image",
                    options: Optional[Options] = None) -> LesionAnalysis:
    """Measure every lesion of a lesion mask (0/1, or a probability map with ``options.soft_threshold``) against
    a cord mask (0/1); masks holding anything else are refused (:mod:`.values`).

    Without a cord only volumes are measured (as SCT). ``image_img`` adds SCT's ``mean_<name>``/``std_<name>``
    columns; ``perslice`` adds SCT's per-sagittal-slice bridge columns. All images share one grid.
    """
    opts = options or Options()
    for other, what in ((cord_img, "cord mask"), (image_img, "image"), (opts.levels_img, "labelled cord")):
        if other is not None:
            same_grid(lesion_img, other, what)
    grid = Grid.of(lesion_img.shape, lesion_img.affine, lesion_img.header.get_zooms())
    zooms = grid.rpi_zooms
    binary, prob = _lesion_input(lesion_img, opts)
    lesion = grid.to_rpi(binary)
    cord = None
    if cord_img is not None:
        check_binary(_data(cord_img), "cord mask")
        cord = grid.to_rpi(_data(cord_img) != 0)
    nli_z = _nli_z(grid, opts.nli_slice, cord is not None) if opts.nli_slice is not None else None
    ids, box, outside, gone, n_outside = _relabel(lesion, cord, connectivity)
    crops = []
    for k, b in enumerate(ndimage.find_objects(ids) if ids.size else []):
        origin = tuple(s.start + o.start for s, o in zip(b, box))
        crops.append(Lesion(ids[b] == k + 1, origin, lesion.shape))
    mid, angles, ctx, sums = None, Angles.flat(grid.rpi_shape[2]), None, None
    if cord is not None:
        sums = SliceSums.of(cord)
        mid, angles, ctx = _cord_geometry(cord, sums, crops, box, zooms, nli_z, opts.nli_slice, angles)
    image = None
    if image_img is not None:
        check_finite(_data(image_img), "image")
        image = grid.to_rpi(_data(image_img))
    anat = Anatomy.of(grid, opts, sums, None if prob is None else grid.to_rpi(prob), cord)
    details, rows = [], []
    for k, crop in enumerate(crops):
        detail, row = _measure(k + 1, crop, ctx, image, image_name, outside[k], grid, mid, perslice)
        details.append(detail)
        rows.append({**row, **anat.lesion_columns(crop)})
    per_slice = _per_slice_numbers(details, grid) if perslice else []
    names = table_columns(image_name if image is not None else "", per_slice)
    if not rows:
        nli = nli_row(cord, mid, nli_z, angles, grid) if nli_z is not None else {}
        rows = [{**zero_row(n_outside, gone, zooms, cord is not None), **nli}]
    summary = summary_of(rows if crops else [], grid, mid, n_outside, gone, zooms)
    summary.update(anat.summary(lesion if cord is None else lesion & cord, opts))
    label_img = _label_image(ids, box, grid, lesion_img)
    params = {"connectivity": connectivity, "perslice": bool(perslice), "cord": cord_img is not None,
              "image": image_name if image is not None else None, "nli_slice": opts.nli_slice,
              "soft_threshold": opts.soft_threshold, "levels": anat.level_type,
              "template": getattr(opts.template, "folder", None),
              "atlas_per_slice": opts.atlas_per_slice}
    out = LesionAnalysis(rows, names, summary, label_img, grid, details, cord, mid, params)
    if opts.template is not None:
        out.sheets = anat.sheets(details, opts.atlas_per_slice)
        for row, detail in zip(rows, details):
            row.update(anat.tract_sides(out.sheets, detail.label))
    return out


def _cord_geometry(cord, sums, crops, box, zooms, nli_z, nli_slice, angles):
    """(midsagittal slice, cord angles, :class:`CordContext` or None): the midsagittal slice from the NLI slice
    when given, else from the largest lesion."""
    mid, ctx = None, None
    if nli_z is not None:
        mid = at_slice(sums, nli_z)
        if mid is None:
            raise InputError(f"no spinal cord at the NLI slice {nli_slice}: cannot place the midsagittal slice")
    elif crops:
        mid = choose(crops[int(np.argmax([volume(c, zooms) for c in crops]))], sums)
    if crops or nli_z is not None:
        angles = cord_angles(sums, zooms)
    if crops:
        ctx = CordContext.of(cord, zooms, angles, mid, sums.count, box)
    return mid, angles, ctx


def _measure(label, crop, ctx, image, image_name, outside, grid, mid, perslice):
    """(:class:`LesionDetail`, SCT's and this package's row) of one lesion."""
    measures = {"volume [mm3]": volume(crop, grid.rpi_zooms)}
    bridges = Bridges()
    if ctx is not None:
        measures.update(sct_measures(crop, ctx))
        bridges = measure_bridges(crop, ctx)
    if image is not None:
        measures[f"mean_{image_name}"], measures[f"std_{image_name}"] = image_stats(crop, image)
    detail = LesionDetail(label, crop, bridges, outside)
    return detail, lesion_row(detail, measures, grid, mid, perslice)


def _per_slice_numbers(details: List[LesionDetail], grid: Grid) -> List[int]:
    """Input sagittal slice numbers with per-slice bridges, in SCT's column order (first lesion first)."""
    seen: List[int] = []
    for d in details:
        for x in sorted(d.bridges.per_slice):
            n = int(grid.input_index(0, x))
            if n not in seen:
                seen.append(n)
    return seen


def _label_image(ids: np.ndarray, box, grid: Grid, reference) -> nib.Nifti1Image:
    """The lesion ids (given on ``box`` of the RPI grid) on the input grid, with the lesion mask's affine,
    qform/sform and units."""
    n = int(ids.max()) if ids.size else 0
    dtype = np.uint8 if n < 256 else np.uint16 if n < 65536 else np.int32
    full = np.zeros(grid.rpi_shape, dtype=dtype)
    full[box] = ids
    hdr = reference.header.copy()
    hdr.set_data_dtype(dtype)
    out = nib.Nifti1Image(grid.from_rpi(full), reference.affine, hdr)
    out.set_qform(reference.header.get_qform(), code=int(reference.header["qform_code"]))
    out.set_sform(reference.header.get_sform(), code=int(reference.header["sform_code"]))
    out.header["scl_slope"], out.header["scl_inter"] = 1.0, 0.0
    out.header["cal_min"], out.header["cal_max"] = 0, n
    return out


def analyze_masks(masks: Mapping[str, object], scheme, image_img=None, perslice: bool = False, *,
                  connectivity: int = SCT_CONNECTIVITY, image_name: str = "image",
                  options: Optional[Options] = None) -> LesionAnalysis:
    """Analyse a segmentation given as one mask per task output; the task's label scheme says which is the
    lesion (``finding``) and which the cord (``parent``)."""
    if not scheme.finding:
        raise InputError("this task has no finding (lesion) output to analyse")
    return analyze_lesions(masks[scheme.finding], masks[scheme.parent], image_img, perslice,
                           connectivity=connectivity, image_name=image_name, options=options)


def analyze_label_map(label_img, scheme, image_img=None, perslice: bool = False, *,
                      connectivity: int = SCT_CONNECTIVITY, image_name: str = "image") -> LesionAnalysis:
    """Analyse a label map (SCIseg: 1 cord, 2 lesion) through the task's label scheme."""
    if not scheme.finding:
        raise InputError("this task has no finding (lesion) output to analyse")
    data = _data(label_img)
    masks = {}
    for name in (scheme.parent, scheme.finding):
        mask = np.isin(data, scheme.output(name).labels).astype(np.uint8)
        masks[name] = nib.Nifti1Image(mask, label_img.affine, label_img.header)
    return analyze_masks(masks, scheme, image_img, perslice, connectivity=connectivity, image_name=image_name)
