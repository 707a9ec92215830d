"""Rows of the lesion table (one per lesion, or one saying there is none) and the per-scan summary."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from ..errors import InputError
from .bridges import diameter_at
from .grid import Grid
from .midsagittal import Midsagittal
from .table import PER_SLICE_KINDS, per_slice_column


def _slice(grid: Grid, z: Optional[int]):
    return None if z is None else int(grid.input_index(2, z))


def _notes(detail) -> List[str]:
    notes = []
    if detail.voxels_outside:
        notes.append(f"{detail.voxels_outside} voxels outside the cord not analysed")
    if detail.bridges.source == "cord_ap_diameter":
        notes.append("lesion off the midsagittal slices: bridges are half the cord A-P diameter (as SCT)")
    if _touches_edge(detail.lesion):
        notes.append("touches the image edge: may continue outside the image")
    if len(detail.lesion.z_slices) == 1:
        notes.append("on a single axial slice")
    return notes


def _touches_edge(lesion) -> bool:
    shape = lesion.full_shape
    return any(o == 0 or o + n == s for o, n, s in zip(lesion.origin, lesion.mask.shape, shape))


def lesion_row(detail, measures: Dict[str, float], grid: Grid, mid: Optional[Midsagittal],
               perslice: bool) -> Dict[str, object]:
    """SCT's columns, then this package's, for one analysed lesion."""
    zooms = grid.rpi_zooms
    b = detail.bridges
    row: Dict[str, object] = {"label": detail.label, **{k: float(v) for k, v in measures.items()}}
    if mid is not None:
        row["interpolated_midsagittal_slice"] = float(grid.input_index(0, mid.x))
        row.update({"interpolated_dorsal_bridge_width [mm]": b.dorsal,
                    "interpolated_ventral_bridge_width [mm]": b.ventral,
                    "interpolated_total_bridge_width [mm]": b.total,
                    "dorsal_bridge_ratio [%]": b.dorsal_ratio, "ventral_bridge_ratio [%]": b.ventral_ratio})
    if perslice:
        for x, values in b.per_slice.items():
            for kind, value in zip(PER_SLICE_KINDS, values):
                row[per_slice_column(grid.input_index(0, x), kind)] = value
    voxels = int(detail.lesion.mask.sum())
    origin = np.asarray(detail.lesion.origin, dtype=float)
    centre = grid.world_mm(np.asarray(ndimage.center_of_mass(detail.lesion.mask)) + origin)
    row.update({
        "total_bridge_width_single_slice [mm]": b.single_total,
        "total_bridge_axial_slice": _slice(grid, b.single_z),
        "dorsal_bridge_axial_slice": _slice(grid, b.dorsal_z),
        "ventral_bridge_axial_slice": _slice(grid, b.ventral_z),
        "bridges_from": b.source,
        "voxels": voxels,
        "voxels_outside_cord": detail.voxels_outside,
        "volume_outside_cord [mm3]": detail.voxels_outside * zooms[0] * zooms[1] * zooms[2],
        "touches_image_edge": int(_touches_edge(detail.lesion)),
        "centroid_x [mm]": centre[0], "centroid_y [mm]": centre[1], "centroid_z [mm]": centre[2],
        "note": "; ".join(_notes(detail)),
    })
    return row


def zero_row(voxels_outside: int, components_outside: int, zooms, has_cord: bool) -> Dict[str, object]:
    """The one row of a scan without any lesion inside the cord."""
    note = "no lesion found"
    if components_outside:
        note = (f"no lesion inside the cord; {components_outside} component(s), {voxels_outside} voxels, "
                "outside the cord not analysed")
    elif not has_cord:
        note = "no lesion found (volume only: no cord mask)"
    return {"label": 0, "volume [mm3]": 0.0, "length [mm]": 0.0 if has_cord else None, "voxels": 0,
            "bridges_from": "none", "voxels_outside_cord": voxels_outside,
            "volume_outside_cord [mm3]": voxels_outside * zooms[0] * zooms[1] * zooms[2], "note": note}


def nli_row(cord: np.ndarray, mid: Midsagittal, z: int, angles, grid: Grid) -> Dict[str, object]:
    """SCT 7.3's row of ``-nli-slice`` without lesion: the cord A-P diameter at the NLI slice as the total
    bridge, half of it dorsal and half ventral (no ratios)."""
    d = diameter_at(cord, mid, z, grid.rpi_zooms[1], angles.sagittal[z])
    if d is None:
        raise InputError(f"could not compute the cord A-P diameter at the NLI slice {int(grid.input_index(2, z))}: "
                         "the cord mask does not cover both midsagittal slices there")
    return {"interpolated_midsagittal_slice": float(grid.input_index(0, mid.x)),
            "interpolated_dorsal_bridge_width [mm]": d / 2, "interpolated_ventral_bridge_width [mm]": d / 2,
            "interpolated_total_bridge_width [mm]": d, "bridges_from": "nli_cord_ap_diameter",
            "note": "no lesion: bridges are the cord A-P diameter at the NLI slice (as SCT)"}


def _max(rows, key):
    values = [r.get(key) for r in rows if isinstance(r.get(key), float) and not np.isnan(r.get(key))]
    return max(values) if values else None


def summary_of(rows: List[Dict[str, object]], grid: Grid, mid: Optional[Midsagittal], voxels_outside: int,
               components_outside: int, zooms) -> Dict[str, object]:
    """Per-scan numbers: what SCT prints at the end (count, total volume and length, max width) and more."""
    lengths = [r["length [mm]"] for r in rows if isinstance(r.get("length [mm]"), float)]
    return {
        "lesion_count": len(rows),
        "total_volume [mm3]": float(sum(r["volume [mm3]"] for r in rows)),
        "total_length [mm]": float(sum(lengths)) if lengths or not rows else None,
        "max_width [mm]": _max(rows, "width [mm]"),
        "max_axial_damage_ratio []": _max(rows, "max_axial_damage_ratio []"),
        "interpolated_midsagittal_slice": None if mid is None else float(grid.input_index(0, mid.x)),
        "voxels_outside_cord": voxels_outside,
        "volume_outside_cord [mm3]": voxels_outside * zooms[0] * zooms[1] * zooms[2],
        "components_outside_cord": components_outside,
        "orientation": grid.orientation,
        "shape": list(grid.shape),
        "voxel_size_rpi_mm": list(zooms),
    }
