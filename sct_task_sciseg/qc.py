"""Quality-control pictures and numbers for a cord + lesion segmentation.

Every automatic lesion mask is checked by eye before anyone trusts a number from it, so this module draws two
mosaics per scan, each with a plain twin (same pixels, no overlay) for comparison:

* **sagittal**: the mid-sagittal slice and its neighbours, *curved to follow the cord* (for every axial level the
  L/R position is taken from the cord centreline), S up, A on the left;
* **axial**: slices along the cord, each crop centred on the cord, radiological convention (patient's right on
  the viewer's left, A up). Slices are spread evenly along the cord, and every lesion component is guaranteed a
  tile (its largest cross-section, plus its first and last slice while the tile budget allows).

The cord is red (``#ff0000``) and the lesion cyan (``#00ffff``), SCT's colours; the image is windowed on robust
percentiles. Work happens in the closest canonical (RAS) orientation, so any input orientation gives the same
pictures. Drawing uses Pillow (a matplotlib dependency) and numpy; nothing here imports torch.

Entry points:

* :func:`render_qc` -- write the PNG pictures (and thumbnails) of one scan;
* :func:`lesion_stats` -- cord volume, lesion count / volume and reviewer flags;
* :func:`write_qc` -- everything ``-qc DIR`` does for one scan: pictures, numbers, an entry in
  ``DIR/entries/`` and a refreshed ``DIR/index.html`` (see :mod:`sct_task_sciseg.qc_report`).
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation
from scipy import ndimage

CORD_RGB = (255, 0, 0)  # SCT's cord colour
LESION_RGB = (0, 255, 255)  # SCT's lesion colour
CORD_FILL_ALPHA = 0.22  # light fill, the interior signal stays readable ...
CORD_EDGE_ALPHA = 0.85  # ... and a crisp outline shows the boundary
LESION_FILL_ALPHA = 0.45
LESION_EDGE_ALPHA = 1.0
BACKGROUND = 16  # canvas grey (neutral: no hue)
TEXT_RGB = (235, 235, 235)
DIM_TEXT_RGB = (160, 160, 160)
WINDOW_PERCENTILES = (0.5, 99.5)

AXIAL_BOX_MM = 32.0  # side of the axial crop around the cord
AXIAL_MAX_TILES = 32  # tile budget (every lesion component still gets its tile beyond it)
AXIAL_MIN_EVEN_TILES = 12  # evenly spaced tiles kept whatever the lesion tiles
AXIAL_COLUMNS = 8
SAGITTAL_MARGIN_MM = 18.0  # A/P margin around the cord
SAGITTAL_SI_MARGIN_MM = 8.0  # S/I margin beyond the cord
SAGITTAL_STEP_MM = 2.0  # spacing of the neighbouring sagittal slices
SAGITTAL_MAX_EXTRA = 3  # extra sagittal slices for lesions off the standard ones
CENTRELINE_SMOOTH_MM = 3.0
MIN_WIDTH = 640  # room for the title line


# ----------------------------------------------------------------------------------------------- geometry
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


def _array3d(obj, dtype=None) -> np.ndarray:
    arr = np.asarray(obj.dataobj if hasattr(obj, "dataobj") else obj)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    while arr.ndim > 3:  # 4-D: first volume
        arr = arr[..., 0]
    while arr.ndim < 3:
        arr = arr[..., None]
    return arr


def _mask3d(obj, shape) -> np.ndarray:
    if obj is None:
        return np.zeros(shape, bool)
    arr = _array3d(obj)
    if arr.shape != tuple(shape):
        raise ValueError(f"mask shape {arr.shape} differs from image shape {tuple(shape)}")
    return arr >= 0.5 if arr.dtype.kind == "f" else arr > 0


def canonical_scan(image: nib.spatialimages.SpatialImage, masks: Mapping[str, object]) -> CanonicalScan:
    """Reorient image and masks (``'sc'``, ``'lesion'``; arrays or images on the image grid) to RAS."""
    data = _array3d(image, np.float32)
    ornt = io_orientation(image.affine)
    can_affine = image.affine @ inv_ornt_aff(ornt, data.shape)
    zooms = tuple(float(z) for z in np.sqrt((can_affine[:3, :3] ** 2).sum(0)))

    def reorient(a):
        return np.ascontiguousarray(apply_orientation(a, ornt))

    cord = _mask3d(masks.get("sc"), data.shape)
    lesion = _mask3d(masks.get("lesion"), data.shape)
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
    """3-D connected components (26-connectivity), largest first."""
    labels, n = ndimage.label(lesion, structure=np.ones((3, 3, 3), bool))
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


# -------------------------------------------------------------------------------------------- statistics
def lesion_stats(masks: Mapping[str, object], affine: np.ndarray) -> dict:
    """Cord volume, lesions (3-D components, 26-connectivity) and reviewer flags.

    ``masks``: ``{'sc': ..., 'lesion': ...}`` (images or arrays on one grid; a missing lesion means none).
    Flags: ``empty-cord``, ``lesion-outside-cord``, ``cord-at-fov-edge`` (R/L or A/P face only: the cord always
    leaves through S/I), ``lesion-at-fov-edge`` (any face: the lesion may continue outside the image).
    ``lesion-in-control`` needs the participant list and is added by :func:`write_qc`.
    """
    cord_in = masks.get("sc")
    if cord_in is None:
        raise ValueError("masks needs an 'sc' (cord) entry")
    cord_arr = _array3d(cord_in)
    cord = _mask3d(cord_arr, cord_arr.shape)
    lesion = _mask3d(masks.get("lesion"), cord.shape)
    affine = np.asarray(affine, float)
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    labels, n = ndimage.label(lesion, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, int)
    outside = int(np.count_nonzero(lesion & ~cord))

    codes = nib.aff2axcodes(affine)
    opposite = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}

    def edges(mask, skip_si):
        found = []
        for axis, code in enumerate(codes):
            if code is None or mask.shape[axis] < 3 or (skip_si and code in "SI"):
                continue
            if mask.take(0, axis=axis).any():
                found.append(opposite[code])  # index 0 lies at the side opposite to the axis direction
            if mask.take(-1, axis=axis).any():
                found.append(code)
        return found

    cord_edges = edges(cord, skip_si=True)
    lesion_edges = edges(lesion, skip_si=False)
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


# ------------------------------------------------------------------------------------------------ panels
@dataclass
class Panel:
    """One picture in a mosaic: where it sits and which canonical voxel every pixel shows.

    The pixel centres sit at canonical voxel coordinates ``(xf, yf, zf)``, three arrays broadcastable to the
    panel's ``(H, W)``: a sagittal panel has ``zf``/``xf`` per row and ``yf`` per column, an axial tile ``yf`` per
    row, ``xf`` per column and one ``zf``. Grey levels are interpolated (linear; nearest along thick-slice axes),
    masks taken at the nearest voxel.
    """

    kind: str  # "sagittal" | "axial"
    label: str
    left: int
    top: int
    xf: np.ndarray
    yf: np.ndarray
    zf: np.ndarray
    shape: Tuple[int, int]
    marks: str = ""

    def index(self, volume_shape) -> Tuple[np.ndarray, np.ndarray]:
        """(flat nearest-voxel index clipped into the volume, inside-the-volume mask), both ``(H, W)``."""
        parts, inside = [], np.ones(self.shape, bool)
        for f, n in zip((self.xf, self.yf, self.zf), volume_shape):
            i = np.rint(f).astype(np.intp)
            inside = inside & (i >= 0) & (i < n)
            parts.append(np.clip(i, 0, n - 1))
        flat = (parts[0] * volume_shape[1] + parts[1]) * volume_shape[2] + parts[2]
        return np.broadcast_to(flat, self.shape), inside

    def voxels(self, volume_shape) -> np.ndarray:
        """``(3, H, W)`` nearest canonical voxel indices of every pixel, -1 where outside the volume."""
        flat, inside = self.index(volume_shape)
        ijk = np.stack(np.unravel_index(flat, volume_shape))
        return np.where(inside[None], ijk, -1)


@dataclass
class Mosaic:
    """A composed picture: overlay and plain RGB arrays of the same layout, and its panels."""

    overlay: np.ndarray  # (H, W, 3) uint8
    plain: np.ndarray
    panels: List[Panel]
    thumb_box: Optional[Tuple[int, int, int, int]] = None  # (left, top, right, bottom) shown in the thumbnail


def _linear_weights(f: np.ndarray, n: int, nearest: bool = False):
    """Indices and weights of linear interpolation at positions ``f`` on ``0..n-1`` (edges clamped); with
    ``nearest`` the nearest voxel only (weight 0 on the second index)."""
    f = np.asarray(f, float)
    if nearest:
        i0 = np.clip(np.rint(f), 0, n - 1).astype(np.intp)
        return i0, i0, np.zeros(f.shape, np.float32)
    f = np.clip(f, 0, n - 1)
    i0 = np.floor(f).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, (f - i0).astype(np.float32)


def _thick_axes(zooms: Sequence[float]) -> Tuple[bool, bool, bool]:
    """Axes whose voxels are much longer than the finest (thick slices): shown with nearest-voxel sampling,
    as acquired, rather than interpolated into a smooth picture the scanner never measured."""
    finest = min(zooms)
    return tuple(bool(z > 1.5 * finest and z > 1.0) for z in zooms)


def _sample_grey(volume: np.ndarray, p: Panel, thick=(False, False, False)) -> np.ndarray:
    """Linear interpolation of ``volume`` at the panel's pixel centres (nearest voxel along ``thick`` axes),
    separably with two-tap gathers (no BLAS: multithreaded small matrix products are slow on a busy machine)."""
    nx, ny, nz = volume.shape
    y0, y1, wy = _linear_weights(p.yf.ravel(), ny, thick[1])
    x0, x1, wx = _linear_weights(p.xf.ravel(), nx, thick[0])
    if p.kind == "axial":
        z = int(np.clip(np.rint(p.zf), 0, nz - 1))
        sl = volume[:, :, z]
        cols = sl[:, y0] * (1 - wy) + sl[:, y1] * wy  # (nx, H)
        return cols[x0].T * (1 - wx) + cols[x1].T * wx  # (H, W)
    # sagittal: per row a (possibly curved) x and a z, per column a y
    z0, z1, wz = _linear_weights(p.zf.ravel(), nz, thick[2])
    wx, wz = wx[:, None], wz[:, None]
    lines = ((1 - wx) * (1 - wz) * volume[x0, :, z0] + wx * (1 - wz) * volume[x1, :, z0]
             + (1 - wx) * wz * volume[x0, :, z1] + wx * wz * volume[x1, :, z1])  # (H, ny)
    return lines[:, y0] * (1 - wy) + lines[:, y1] * wy


def _sagittal_panels(scan: CanonicalScan, cx, cy, has_cord, comps, title_h) -> Tuple[List[Panel], dict]:
    nx, ny, nz = scan.cord.shape
    dx, dy, dz = scan.zooms
    # S/I range: the cord (and lesions) plus a margin
    zs = np.nonzero(scan.cord.any((0, 1)) | scan.lesion.any((0, 1)))[0]
    m = int(round(SAGITTAL_SI_MARGIN_MM / dz))
    z0, z1 = (max(zs[0] - m, 0), min(zs[-1] + m, nz - 1)) if zs.size else (0, nz - 1)
    # A/P range: the centreline (and lesions) plus a margin
    ylo, yhi = cy[z0:z1 + 1].min(), cy[z0:z1 + 1].max()
    for c in comps:
        ylo, yhi = min(ylo, c.voxels[:, 1].min()), max(yhi, c.voxels[:, 1].max())
    m = SAGITTAL_MARGIN_MM / dy
    y0, y1 = int(max(np.floor(ylo - m), 0)), int(min(np.ceil(yhi + m), ny - 1))
    if not has_cord:
        y0, y1 = 0, ny - 1
    height_mm, width_mm = (z1 - z0 + 1) * dz, (y1 - y0 + 1) * dy

    # slices: centreline and neighbours every ~2 mm, plus one for any lesion none of them cuts
    step = max(1, int(round(SAGITTAL_STEP_MM / dx)))
    offsets = [2 * step, step, 0, -step, -2 * step] if nx > 1 else [0]
    centre_x = np.rint(cx).astype(int)
    extras = {}
    for c in comps:
        rel = c.voxels[:, 0] - centre_x[c.voxels[:, 2]]
        if not np.isin(rel, offsets + list(extras)).any() and len(extras) < SAGITTAL_MAX_EXTRA:
            extras[int(np.median(rel))] = c.number
    offsets = sorted(set(offsets) | set(extras), reverse=True)  # patient's right first, like the axial view
    span = cx[z0:z1 + 1]
    offsets = [o for o in offsets if ((span + o > -0.5) & (span + o < nx - 0.5)).any()]

    n = len(offsets)
    ppm = min(5.0, 880.0 / height_mm, 1560.0 / (n * (width_mm + 10)))
    ppm = max(ppm, 1.0)
    H, W = max(1, int(round(height_mm * ppm))), max(1, int(round(width_mm * ppm)))
    zf = z1 + 0.5 - (np.arange(H) + 0.5) / (ppm * dz)  # S at the top
    yf = y1 + 0.5 - (np.arange(W) + 0.5) / (ppm * dy)  # A on the left
    cx_at = np.interp(zf, np.arange(nz), cx)  # the centreline, continuous along the rows: no stair steps
    side, gap, label_h = 16, 10, 18
    panels = []
    left = 10
    for o in offsets:
        if o == 0:
            label = "centreline"
        else:
            label = f"{'R' if o > 0 else 'L'} {abs(o) * dx:.1f} mm"
        if o in extras:
            label += f" · lesion {extras[o]}"
        panels.append(Panel("sagittal", label, left + side, title_h + label_h + side,
                            (cx_at + o)[:, None], yf[None, :], zf[:, None], (H, W)))
        left += side + W + side + gap
    geometry = {"width": max(left - gap + 10, MIN_WIDTH), "height": title_h + label_h + side + H + side + 8, "side": side,
                "label_h": label_h, "ppm": ppm}
    return panels, geometry


def _axial_slices(scan: CanonicalScan, comps: List[LesionComponent]) -> Tuple[List[int], dict]:
    """Slices for the axial mosaic: evenly along the cord, plus every lesion component's slices."""
    nz = scan.cord.shape[2]
    zs = np.nonzero(scan.cord.any((0, 1)))[0]
    z0, z1 = (int(zs[0]), int(zs[-1])) if zs.size else (0, nz - 1)
    required = {}  # z -> components
    for c in comps:
        required.setdefault(c.best_z, set()).add(c.number)
    optional = []
    for c in comps:  # first and last slice of each component, then a middle one, largest components first
        zc = c.z_values
        for z in (zc[0], zc[-1], zc[len(zc) // 2]):
            if int(z) not in required and int(z) not in optional:
                optional.append(int(z))
    budget_lesion = max(AXIAL_MAX_TILES - AXIAL_MIN_EVEN_TILES, len(required))
    lesion_z = set(required) | set(optional[:max(0, budget_lesion - len(required))])
    n_even = max(AXIAL_MIN_EVEN_TILES, AXIAL_MAX_TILES - len(lesion_z))
    if z1 - z0 + 1 <= n_even:
        even = set(range(z0, z1 + 1))
    else:
        even = set(int(round(v)) for v in np.linspace(z0, z1, n_even))
    chosen = sorted(even | lesion_z, reverse=True)  # superior first, reading order
    in_slice = {}
    for c in comps:
        for z in c.z_values:
            in_slice.setdefault(int(z), []).append(c.number)
    return chosen, in_slice


def _axial_panels(scan: CanonicalScan, cx, cy, comps, title_h) -> Tuple[List[Panel], dict]:
    dx, dy, _ = scan.zooms
    chosen, in_slice = _axial_slices(scan, comps)
    ppm = 5.0 if len(chosen) <= 40 else 4.0 if len(chosen) <= 80 else 3.0  # many lesions: smaller tiles
    T = int(round(AXIAL_BOX_MM * ppm))
    half = AXIAL_BOX_MM / 2.0
    u = (np.arange(T) + 0.5) / ppm - half  # mm from the tile centre
    ncol = min(AXIAL_COLUMNS, len(chosen))
    label_h, gap, pad = 17, 6, 10
    panels = []
    for k, z in enumerate(chosen):
        ccx, ccy = cx[z], cy[z]
        les = np.argwhere(scan.lesion[:, :, z])
        if les.size:  # keep lesion voxels in the tile (a lesion off the cord would else be cropped away)
            xs = np.r_[les[:, 0], ccx]
            ys = np.r_[les[:, 1], ccy]
            if (np.ptp(xs) + 1) * dx > 2 * half - 2 or (np.ptp(ys) + 1) * dy > 2 * half - 2:
                xs, ys = les[:, 0], les[:, 1]
            if np.abs(xs - ccx).max() * dx > half - 1 or np.abs(ys - ccy).max() * dy > half - 1:
                ccx, ccy = (xs.min() + xs.max()) / 2.0, (ys.min() + ys.max()) / 2.0
        row, col = divmod(k, ncol)
        left = pad + col * (T + gap)
        top = title_h + row * (T + label_h + gap) + label_h
        src_axis, src_index = scan.input_index(2, z)
        label = f"{'ijk'[src_axis]}={src_index}"
        p = Panel("axial", label, left, top, (ccx - u / dx)[None, :],  # patient's right on the viewer's left
                  (ccy - u / dy)[:, None], np.array(float(z)), (T, T))  # anterior at the top
        if z in in_slice:
            numbers = sorted(in_slice[z])
            p.marks = "lesion " + ",".join(str(n) for n in numbers[:3]) + ("…" if len(numbers) > 3 else "")
        panels.append(p)
    nrow = (len(chosen) + ncol - 1) // ncol
    geometry = {"width": max(2 * pad + ncol * T + (ncol - 1) * gap, MIN_WIDTH),
                "height": title_h + nrow * (T + label_h + gap) - gap + pad, "tile": T, "label_h": label_h,
                "ppm": ppm}
    return panels, geometry


# --------------------------------------------------------------------------------------------- drawing
@lru_cache(maxsize=8)
def _font(size: int, bold: bool = False):
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    candidates = []
    try:
        import importlib.util

        spec = importlib.util.find_spec("matplotlib")
        if spec and spec.submodule_search_locations:
            candidates.append(Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf" / name)
    except (ImportError, ValueError):
        pass
    candidates.append(Path("/usr/share/fonts/truetype/dejavu") / name)
    for path in candidates:
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _edge(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Inner boundary of a 2-D mask, ``width`` pixels thick (inside the mask)."""
    if not mask.any():
        return mask
    inner = ndimage.binary_erosion(mask, iterations=width, border_value=1)  # a mask cut by the panel edge
    # goes on beyond it: no outline there
    return mask & ~inner


def _blend(rgb: np.ndarray, where: np.ndarray, colour, alpha: float):
    if where.any():
        c = np.asarray(colour, np.float32)
        rgb[where] = rgb[where] * (1.0 - alpha) + c * alpha


def _compose(scan: CanonicalScan, panels: List[Panel], width: int, height: int):
    """Sample every panel, window the grey levels on robust percentiles, and paint overlay + plain canvases."""
    greys, looks = [], []
    cord_flat, lesion_flat = scan.cord.ravel(), scan.lesion.ravel()
    thick = _thick_axes(scan.zooms)
    for p in panels:
        flat, inside = p.index(scan.cord.shape)
        greys.append(_sample_grey(scan.image, p, thick))
        looks.append((inside, cord_flat[flat] & inside, lesion_flat[flat] & inside))
    values = np.concatenate([g[v[0]] for g, v in zip(greys, looks)]) if panels else np.zeros(0)
    if values.size == 0:
        values = np.zeros(1)
    lo, hi = np.percentile(values, WINDOW_PERCENTILES)
    if hi <= lo:
        hi = lo + 1.0
    plain = np.full((height, width, 3), BACKGROUND, np.uint8)
    overlay = plain.copy()
    for p, g, (inside, cord, lesion) in zip(panels, greys, looks):
        h, w = p.shape
        grey = np.clip((g - lo) * (255.0 / (hi - lo)), 0, 255)
        grey = np.where(inside, grey, 0.0).astype(np.float32)
        plain[p.top:p.top + h, p.left:p.left + w] = np.rint(grey)[..., None].astype(np.uint8)
        if not (cord.any() or lesion.any()):
            overlay[p.top:p.top + h, p.left:p.left + w] = plain[p.top:p.top + h, p.left:p.left + w]
            continue
        rgb = np.repeat(grey[..., None], 3, axis=2)
        edge_w = 2 if min(h, w) >= 120 else 1
        _blend(rgb, cord & ~lesion, CORD_RGB, CORD_FILL_ALPHA)
        _blend(rgb, _edge(cord, edge_w) & ~lesion, CORD_RGB, CORD_EDGE_ALPHA)
        _blend(rgb, lesion, LESION_RGB, LESION_FILL_ALPHA)
        _blend(rgb, _edge(lesion, 1), LESION_RGB, LESION_EDGE_ALPHA)
        overlay[p.top:p.top + h, p.left:p.left + w] = np.rint(rgb).astype(np.uint8)
    return overlay, plain


def _text(draw, xy, text, size=12, fill=TEXT_RGB, anchor="la", bold=False, max_width=None):
    font = _font(size, bold)
    if max_width is not None and draw.textlength(text, font=font) > max_width:
        while len(text) > 4 and draw.textlength(text + "…", font=font) > max_width:
            text = text[:-1]
        text += "…"
    draw.text(xy, text, fill=fill, font=font, anchor=anchor)


def _annotate(canvas: np.ndarray, kind: str, panels: List[Panel], geometry: dict, title: str, plain: bool):
    from PIL import Image, ImageDraw

    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    width = canvas.shape[1]
    what = ("Sagittal, curved to follow the cord" if kind == "sagittal"
            else "Axial slices along the cord, R on the left; tile label = slice index in the input")
    legend = "no overlay" if plain else "cord red · lesion cyan"
    _text(draw, (10, 6), title, 14, bold=True, max_width=width * 0.5)
    _text(draw, (width - 10, 7), f"{what} · {legend}", 12, DIM_TEXT_RGB, anchor="ra",
          max_width=width * 0.48)
    for p in panels:
        h, w = p.shape
        if kind == "sagittal":
            side, label_h = geometry["side"], geometry["label_h"]
            _text(draw, (p.left + w / 2, p.top - side - label_h + 2), p.label, 12, anchor="ma", max_width=w + 30)
            _text(draw, (p.left + w / 2, p.top - side / 2), "S", 13, anchor="mm", bold=True)
            _text(draw, (p.left + w / 2, p.top + h + side / 2), "I", 13, anchor="mm", bold=True)
            _text(draw, (p.left - side / 2, p.top + h / 2), "A", 13, anchor="mm", bold=True)
            _text(draw, (p.left + w + side / 2, p.top + h / 2), "P", 13, anchor="mm", bold=True)
        else:
            _text(draw, (p.left + 1, p.top - 3), p.label, 12, anchor="ld")
            if p.marks:
                _text(draw, (p.left + w - 1, p.top - 3), p.marks, 12, anchor="rd", max_width=w * 0.6)
            # orientation letters inside the tile edges, away from the cord in the centre
            _text(draw, (p.left + w / 2, p.top + 2), "A", 11, DIM_TEXT_RGB, anchor="ma")
            _text(draw, (p.left + w / 2, p.top + h - 2), "P", 11, DIM_TEXT_RGB, anchor="md")
            _text(draw, (p.left + 3, p.top + h / 2), "R", 11, DIM_TEXT_RGB, anchor="lm")
            _text(draw, (p.left + w - 3, p.top + h / 2), "L", 11, DIM_TEXT_RGB, anchor="rm")
    return np.asarray(img)


def render_mosaics(image: nib.spatialimages.SpatialImage, masks: Mapping[str, object],
                   title: str = "") -> Dict[str, Mosaic]:
    """The sagittal and axial mosaics as arrays (no file written): ``{'sagittal': Mosaic, 'axial': Mosaic}``."""
    scan = canonical_scan(image, masks)
    cx, cy, has_cord = cord_centreline(scan.cord, scan.zooms)
    comps = lesion_components(scan.lesion)
    title_h = 28
    out = {}
    for kind, build in (("sagittal", lambda: _sagittal_panels(scan, cx, cy, has_cord, comps, title_h)),
                        ("axial", lambda: _axial_panels(scan, cx, cy, comps, title_h))):
        panels, geometry = build()
        overlay, plain = _compose(scan, panels, geometry["width"], geometry["height"])
        overlay = _annotate(overlay, kind, panels, geometry, title, plain=False)
        plain = _annotate(plain, kind, panels, geometry, title, plain=True)
        box = None
        if kind == "sagittal":  # thumbnail: the centreline slice with its labels
            p = next((q for q in panels if q.label.startswith("centreline")), panels[len(panels) // 2])
            side, label_h = geometry["side"], geometry["label_h"]
            box = (p.left - side, p.top - side - label_h, p.left + p.shape[1] + side, p.top + p.shape[0] + side)
        out[kind] = Mosaic(overlay, plain, panels, box)
    return out


def _save_png(array: np.ndarray, path: Path, thumb: Optional[Tuple[int, int]] = None, box=None):
    from PIL import Image

    if box is not None:
        array = array[box[1]:box[3], box[0]:box[2]]
    if array.ndim == 3 and np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0],
                                                                                          array[..., 2]):
        array = array[..., 0]  # grey: a third of the bytes to compress
    img = Image.fromarray(array)
    if thumb is not None:
        img.thumbnail(thumb, Image.Resampling.BILINEAR if hasattr(Image, "Resampling") else Image.BILINEAR,
                      reducing_gap=2.0)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, format="PNG", compress_level=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


THUMB_SIZE = {"sagittal": (240, 170), "axial": (300, 170)}


def render_qc(image: nib.spatialimages.SpatialImage, masks: Mapping[str, object], out_dir: Path, stem: str,
              title: Optional[str] = None) -> Dict[str, Path]:
    """Write the QC pictures of one scan into ``out_dir`` and return their paths.

    ``masks``: ``{'sc': cord, 'lesion': lesion}`` (uint8 0/1 images or arrays on the image grid; a missing lesion
    is drawn as none). Keys of the result: ``sagittal``, ``sagittal_plain``, ``axial``, ``axial_plain`` (full
    size, ``<stem>_<key>.png``) and the same with ``_thumb`` appended (small copies for an index page; the
    sagittal thumbnail shows the centreline slice only).
    Files are written atomically (temporary name, then rename).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mosaics = render_mosaics(image, masks, title if title is not None else stem)
    paths = {}
    for kind, mosaic in mosaics.items():
        for variant, array in (("", mosaic.overlay), ("_plain", mosaic.plain)):
            key = f"{kind}{variant}"
            paths[key] = out_dir / f"{stem}_{key}.png"
            _save_png(array, paths[key])
            paths[f"{key}_thumb"] = out_dir / f"{stem}_{key}_thumb.png"
            _save_png(array, paths[f"{key}_thumb"], thumb=THUMB_SIZE[kind], box=mosaic.thumb_box)
    return paths


# ------------------------------------------------------------------------------------------- -qc DIR
_BIDS_SUB = re.compile(r"(?:^|[_/])(sub-[A-Za-z0-9]+)")
_BIDS_SES = re.compile(r"(?:^|[_/])(ses-[A-Za-z0-9]+)")


def _nifti_stem(path: Path) -> str:
    name = Path(path).name
    for ext in (".nii.gz", ".nii", ".mgz", ".gz"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def _find_bids_root(path: Path) -> Optional[Path]:
    for parent in list(Path(path).resolve().parents)[:6]:
        if (parent / "participants.tsv").is_file() or (parent / "dataset_description.json").is_file():
            return parent
    return None


def write_qc(qc_dir, image_path: Path, image: nib.spatialimages.SpatialImage, masks: Mapping[str, object], *,
             model_tag: str, task_name: str, dataset: Optional[str] = None, subject: Optional[str] = None,
             session: Optional[str] = None, bids_root: Optional[Path] = None) -> Path:
    """Everything ``-qc DIR`` does for one segmented scan; returns the path of its entry JSON.

    * pictures: ``DIR/pictures/<entry id>/<stem>_{sagittal,axial}[_plain][_thumb].png`` (:func:`render_qc`);
    * numbers and flags: :func:`lesion_stats`, plus ``lesion-in-control`` when the subject is a healthy control
      in ``participants.tsv`` (:func:`sct_task_sciseg.qc_report.read_participants_controls`);
    * ``DIR/entries/<entry id>.json`` written atomically, then ``DIR/index.html`` re-rendered under a file lock
      (:func:`sct_task_sciseg.qc_report.add_qc_entry`), so parallel runs can share one ``DIR``.

    ``subject``/``session`` default to the BIDS entities (``sub-*``, ``ses-*``) in ``image_path``; ``bids_root``
    defaults to the nearest parent folder holding ``participants.tsv`` or ``dataset_description.json``, and
    ``dataset`` to that folder's name. The entry id combines dataset, subject, session, file, task and model tag:
    running the same scan and model again replaces its row.
    """
    from . import __version__
    from . import qc_report

    t0 = time.perf_counter()
    qc_dir = Path(qc_dir)
    image_path = Path(image_path)
    text_path = image_path.as_posix()
    if subject is None:
        m = _BIDS_SUB.search(text_path)
        subject = m.group(1) if m else None
    if session is None:
        m = _BIDS_SES.search(text_path)
        session = m.group(1) if m else None
    if bids_root is None and subject is not None:
        bids_root = _find_bids_root(image_path)
    if dataset is None and bids_root is not None:
        dataset = Path(bids_root).resolve().name
    stem = _nifti_stem(image_path)

    stats = lesion_stats(masks, image.affine)
    is_control = None
    if bids_root is not None:
        controls = {qc_report.normalise_subject(c) for c in qc_report.read_participants_controls(Path(bids_root))}
        if controls and subject is not None:
            is_control = qc_report.normalise_subject(subject) in controls
    flags = list(stats["flags"])
    if is_control and stats["lesion_count"] > 0:
        flags.append("lesion-in-control")

    entry_id = qc_report.entry_id(dataset, subject, session, stem, task_name, model_tag)
    pic_dir = qc_dir / "pictures" / entry_id
    title = " / ".join(x for x in (dataset, subject, session, image_path.name) if x)
    t1 = time.perf_counter()
    pictures = render_qc(image, masks, pic_dir, stem, title=title)
    render_ms = (time.perf_counter() - t1) * 1000.0

    entry = {
        "schema": 1,
        "id": entry_id,
        "dataset": dataset,
        "subject": subject,
        "session": session,
        "file": image_path.name,
        "image_path": str(image_path.resolve()) if image_path.exists() else str(image_path),
        "task": task_name,
        "model_tag": model_tag,
        "is_control": is_control,
        "shape": [int(s) for s in image.shape[:3]],
        "zooms_mm": [round(float(z), 4) for z in image.header.get_zooms()[:3]],
        "orientation": "".join(c or "?" for c in nib.aff2axcodes(image.affine)),
        "stats": stats,
        "flags": flags,
        "pictures": {k: p.relative_to(qc_dir).as_posix() for k, p in pictures.items()},
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "render_ms": round(render_ms, 1),
        "qc_ms": None,
        "version": __version__,
    }
    entry["qc_ms"] = round((time.perf_counter() - t0) * 1000.0, 1)
    return qc_report.add_qc_entry(qc_dir, entry)
