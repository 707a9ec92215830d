"""Mosaic layout: which canonical voxel every pixel of the sagittal and axial panels shows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from .geometry import CanonicalScan, LesionComponent

AXIAL_BOX_MM = 32.0  # side of the axial crop around the cord
AXIAL_MAX_TILES = 32  # tile budget (every lesion component still gets its tile beyond it)
AXIAL_MIN_EVEN_TILES = 12  # evenly spaced tiles kept whatever the lesion tiles
AXIAL_COLUMNS = 8
SAGITTAL_MARGIN_MM = 18.0  # A/P margin around the cord
SAGITTAL_SI_MARGIN_MM = 8.0  # S/I margin beyond the cord
SAGITTAL_STEP_MM = 2.0  # spacing of the neighbouring sagittal slices
SAGITTAL_MAX_EXTRA = 3  # extra sagittal slices for lesions off the standard ones
MIN_WIDTH = 640  # room for the title line


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


def thick_axes(zooms: Sequence[float]) -> Tuple[bool, bool, bool]:
    """Axes whose voxels are much longer than the finest (thick slices): shown with nearest-voxel sampling,
    as acquired, rather than interpolated into a smooth picture the scanner never measured."""
    finest = min(zooms)
    return tuple(bool(z > 1.5 * finest and z > 1.0) for z in zooms)


def sample_grey(volume: np.ndarray, p: Panel, thick=(False, False, False)) -> np.ndarray:
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


def sagittal_panels(scan: CanonicalScan, cx, cy, has_cord, comps, title_h) -> Tuple[List[Panel], dict]:
    """The sagittal mosaic's panels (curved along the cord) and the geometry the drawing needs."""
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


def axial_panels(scan: CanonicalScan, cx, cy, comps, title_h) -> Tuple[List[Panel], dict]:
    """The axial mosaic's panels (slices along the cord, lesion slices first) and their geometry."""
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
