"""Tissue bridges (Huber et al., Ann Neurol 2017) as SCT 7.3's ``sct_analyze_lesion`` measures them.

On every sagittal slice x and axial slice z holding the lesion, along A-P (RPI axis 1, dorsal = low index):
dorsal = first lesion index − first cord index, ventral = last cord index − last lesion index (≥ 0, voxels),
in mm × A-P voxel size × cos(sagittal angle of z). The *interpolated* bridges blend, on each axial slice, the
values of the two sagittal slices of the midsagittal position (a slice without lesion takes the other's value);
SCT reports the minimum dorsal and the minimum ventral over axial slices, and as the total their sum, even when
the two minima lie on different axial slices. ``total_bridge_width_single_slice [mm]`` is the better-defined
total: the minimum over axial slices of dorsal + ventral *on the same slice*.

When the lesion misses both midsagittal slices, SCT uses the cord's A-P diameter (voxels of cord along A-P,
blended, angle-corrected; minimum over the lesion's slices with cord on both) as the total and half of it as
dorsal and ventral (``bridges_from = cord_ap_diameter``). Ratios: part / total × 100, 0 when the total is not
positive (SCT also writes 0 when it is NaN).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from .measures import CordContext, Lesion, column_extent


@dataclass
class Segment:
    """A bridge as drawn on the midsagittal plane: axial slice z, A-P voxel edges from ``y0`` to ``y1``."""

    z: int
    y0: float
    y1: float
    mm: float


@dataclass
class Bridges:
    dorsal: float = np.nan
    ventral: float = np.nan
    total: float = np.nan
    dorsal_ratio: float = 0.0
    ventral_ratio: float = 0.0
    single_total: float = np.nan
    single_z: Optional[int] = None
    dorsal_z: Optional[int] = None
    ventral_z: Optional[int] = None
    source: str = "none"  # midsagittal | cord_ap_diameter | none
    per_slice: Dict[int, Tuple[float, float, float]] = field(default_factory=dict)  # RPI x → (d, v, total) mm
    drawing: Dict[str, Segment] = field(default_factory=dict)  # "dorsal"/"ventral" → segment


def measure_bridges(lesion: Lesion, ctx: CordContext) -> Bridges:
    """Interpolated and per-sagittal-slice bridges of one lesion; NaN without a midsagittal slice."""
    out = Bridges()
    if ctx.mid is None:
        return out
    x0, _, z0 = lesion.origin
    lf, ll, _ = column_extent(lesion.mask, lesion.origin[1])  # (nx_crop, nz_crop), -1 where no lesion
    present = lf >= 0
    xs, zs = np.nonzero(present)
    cf, cl = ctx.at(ctx.first, xs + x0, zs + z0), ctx.at(ctx.last, xs + x0, zs + z0)
    dorsal = np.full(lf.shape, np.nan)
    ventral = np.full(lf.shape, np.nan)
    dorsal[xs, zs] = np.maximum(lf[xs, zs] - cf, 0)
    ventral[xs, zs] = np.maximum(cl - ll[xs, zs], 0)
    py = ctx.zooms[1]
    cos = np.cos(ctx.angles.sagittal[z0:z0 + lf.shape[1]])
    for xi in np.unique(xs):
        on = present[xi]
        d_mm, v_mm = dorsal[xi, on] * py * cos[on], ventral[xi, on] * py * cos[on]
        out.per_slice[int(xi + x0)] = (float(d_mm.min()), float(v_mm.min()), float(d_mm.min()) + float(v_mm.min()))
    rows = [xi for xi in (s - x0 for s in ctx.mid.slices) if 0 <= xi < lf.shape[0]]
    z_on = np.nonzero(np.any([present[xi] for xi in rows], axis=0))[0] if rows else np.zeros(0, int)
    if z_on.size == 0:
        _from_cord_diameter(out, lesion, ctx)
    else:
        _interpolated(out, dorsal, ventral, (lf, ll), z_on, lesion, ctx)
    if out.total > 0:
        out.dorsal_ratio = (out.dorsal / out.total) * 100
        out.ventral_ratio = (out.ventral / out.total) * 100
    return out


def _at(values: np.ndarray, x: int, x0: int, zl: np.ndarray) -> np.ndarray:
    """Values of crop row ``x - x0`` at crop slices ``zl``; NaN where the row lies outside the crop."""
    i = x - x0
    return values[i, zl].astype(float) if 0 <= i < values.shape[0] else np.full(zl.shape, np.nan)


def _interpolated(out: Bridges, dorsal, ventral, lesion_ext, z_on, lesion: Lesion, ctx: CordContext) -> None:
    mid, py = ctx.mid, ctx.zooms[1]
    x0, z0 = lesion.origin[0], lesion.origin[2]
    s1, s2 = mid.slices
    cos = np.cos(ctx.angles.sagittal[z_on + z0])
    d = mid.blend(_at(dorsal, s1, x0, z_on), _at(dorsal, s2, x0, z_on)) * py * cos
    v = mid.blend(_at(ventral, s1, x0, z_on), _at(ventral, s2, x0, z_on)) * py * cos
    out.source = "midsagittal"
    out.dorsal, out.ventral = float(np.min(d)), float(np.min(v))
    out.total = out.dorsal + out.ventral
    i_d, i_v, i_t = int(np.argmin(d)), int(np.argmin(v)), int(np.argmin(d + v))
    out.single_total, out.single_z = float((d + v)[i_t]), int(z_on[i_t] + z0)
    out.dorsal_z, out.ventral_z = int(z_on[i_d] + z0), int(z_on[i_v] + z0)
    lf, ll = lesion_ext
    lesion_first = np.where(lf >= 0, lf, np.nan)
    lesion_last = np.where(ll >= 0, ll, np.nan)
    for name, i, lesion_edge, cord_edge, mm in (("dorsal", i_d, lesion_first, ctx.first, out.dorsal),
                                                ("ventral", i_v, lesion_last, ctx.last, out.ventral)):
        zl = z_on[i:i + 1]
        on = [not np.isnan(_at(lesion_edge, s, x0, zl)[0]) for s in (s1, s2)]
        y_lesion = mid.blend(*(_at(lesion_edge, s, x0, zl) for s in (s1, s2)))[0]
        y_cord = mid.blend(*(float(ctx.at(cord_edge, s, zl[0] + z0)) if ok else np.nan
                              for s, ok in zip((s1, s2), on)))
        y_cord = float(np.asarray(y_cord).reshape(-1)[0])
        if name == "dorsal":
            out.drawing[name] = Segment(int(zl[0] + z0), y_cord - 0.5, float(y_lesion) - 0.5, mm)
        else:
            out.drawing[name] = Segment(int(zl[0] + z0), float(y_lesion) + 0.5, y_cord + 0.5, mm)


def blended_diameter(n1: int, n2: int, mid, py: float, angle: float) -> float:
    """SCT's cord A-P diameter: cord voxels along A-P on the two midsagittal slices, blended, × A-P voxel size ×
    cos(sagittal angle)."""
    return float(float(mid.blend(n1, n2)) * py * np.cos(angle))


def diameter_at(cord: np.ndarray, mid, z: int, py: float, angle: float) -> Optional[float]:
    """The cord A-P diameter on RPI axial slice ``z`` (``-nli-slice`` without lesion); None unless both
    midsagittal slices hold cord there."""
    n1, n2 = (int(np.count_nonzero(cord[s, :, z])) for s in mid.slices)
    return blended_diameter(n1, n2, mid, py, angle) if n1 and n2 else None


def _from_cord_diameter(out: Bridges, lesion: Lesion, ctx: CordContext) -> None:
    mid, py = ctx.mid, ctx.zooms[1]
    s1, s2 = mid.slices
    diameters = {}
    for z in lesion.z_slices:
        n1, n2 = ctx.at(ctx.count, s1, z), ctx.at(ctx.count, s2, z)
        if n1 and n2:
            diameters[int(z)] = blended_diameter(n1, n2, mid, py, ctx.angles.sagittal[z])
    if not diameters:
        return
    z_min = min(diameters, key=diameters.get)
    diameter = diameters[z_min]
    out.source = "cord_ap_diameter"
    out.dorsal = out.ventral = diameter / 2
    out.total = out.single_total = diameter
    out.single_z = out.dorsal_z = out.ventral_z = z_min
