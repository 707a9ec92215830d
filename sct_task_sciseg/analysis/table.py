"""The columns of the lesion table: SCT 7.3's ``measures`` sheet first (same names and units), then this
package's own columns; and the table as CSV text."""
from __future__ import annotations

import csv
import io
import math
import numbers
from typing import Dict, Iterable, List, Mapping, Sequence

import numpy as np

SCT_COLUMNS: Dict[str, str] = {
    "label": "lesion id, as in the <mask>_label.nii.gz image (0: the row of a scan without lesion)",
    "volume [mm3]": "lesion volume (voxels inside the cord × voxel volume)",
    "length [mm]": "S-I length: sum over axial slices holding the lesion of slice thickness / cos(3-D cord angle)",
    "width [mm]": "A-P width: maximum over axial slices of the A-P extent × cos(sagittal cord angle)",
    "max_equivalent_diameter [mm]": "diameter of the circle with the largest angle-corrected axial lesion area",
    "max_axial_damage_ratio []": "maximum over axial slices of lesion area / cord area (no angle correction)",
    "interpolated_midsagittal_slice": "midsagittal position (fractional slice index along the input's R-L axis), "
                                      "shared by all lesions of the scan",
    "length_interpolated_midsagittal_slice [mm]": "S-I length of the lesion on the interpolated midsagittal slice",
    "width_interpolated_midsagittal_slice [mm]": "A-P width of the lesion on the interpolated midsagittal slice",
    "interpolated_dorsal_bridge_width [mm]": "minimum dorsal tissue bridge on the interpolated midsagittal slice",
    "interpolated_ventral_bridge_width [mm]": "minimum ventral tissue bridge on the interpolated midsagittal slice",
    "interpolated_total_bridge_width [mm]": "SCT's total: minimum dorsal + minimum ventral bridge (the two "
                                            "minima may lie on different axial slices)",
    "dorsal_bridge_ratio [%]": "dorsal / total bridge width × 100",
    "ventral_bridge_ratio [%]": "ventral / total bridge width × 100",
}
SCT_IMAGE_COLUMNS = ("mean_{}", "std_{}")  # with -i IMAGE, after max_axial_damage_ratio, as SCT places them
PER_SLICE_KINDS = ("dorsal", "ventral", "total")

OWN_COLUMNS: Dict[str, str] = {
    "total_bridge_width_single_slice [mm]": "minimum over axial slices of dorsal + ventral bridge on the SAME "
                                            "slice of the interpolated midsagittal slice (a well-defined total)",
    "total_bridge_axial_slice": "axial slice (index along the input's S-I axis) of that minimum",
    "dorsal_bridge_axial_slice": "axial slice of the minimum dorsal bridge",
    "ventral_bridge_axial_slice": "axial slice of the minimum ventral bridge",
    "bridges_from": "midsagittal (measured on the interpolated midsagittal slice), cord_ap_diameter (lesion "
                    "off the midsagittal slices: SCT's fallback, half the cord's A-P diameter each), "
                    "nli_cord_ap_diameter (no lesion, -nli-slice: the same at the NLI slice) or none",
    "voxels": "lesion voxels analysed (inside the cord)",
    "voxels_outside_cord": "voxels of this connected component outside the cord mask (not analysed)",
    "volume_outside_cord [mm3]": "their volume",
    "touches_image_edge": "1 when the lesion touches a face of the image (it may continue outside)",
    "centroid_x [mm]": "lesion centre of mass, world coordinates (RAS+, scanner mm)",
    "centroid_y [mm]": "lesion centre of mass, world coordinates (RAS+, scanner mm)",
    "centroid_z [mm]": "lesion centre of mass, world coordinates (RAS+, scanner mm)",
    "right_share [%]": "share of the lesion's voxels right of the cord's centre (mean R-L index of the cord on "
                       "each axial slice; a voxel on the centre counts half); needs the cord mask",
    "left_share [%]": "share of the lesion's voxels left of the cord's centre (as right_share)",
    "level_type": "vertebral or spinal: what the level columns count (-levels file name, -level-type, or "
                  "vertebral for the -f template's PAM50_levels)",
    "level_rostral": "most rostral (smallest) level of the lesion's axial slices (each slice: its most common "
                     "non-zero level in the labelled cord, SCT's vert_level)",
    "level_caudal": "most caudal (largest) level of the lesion's axial slices",
    "levels_spanned": "level_caudal - level_rostral + 1",
    "level_largest_damage": "level of the axial slice with the largest lesion / cord area (lesion area without a "
                            "cord)",
    "tracts_left [%]": "with -f: share of the lesion's atlas-weighted volume in tracts named left",
    "tracts_right [%]": "with -f: share of the lesion's atlas-weighted volume in tracts named right",
    "soft_volume [mm3]": "with -soft-threshold: sum of the probabilities over the lesion's voxels × voxel volume",
    "note": "what happened to this lesion beyond SCT's definitions, in words",
}


PATTERN_COLUMNS: Dict[str, str] = {  # columns whose names depend on the inputs
    "mean_<image>": "with -i: mean of the image over the lesion's voxels where the image is not 0",
    "std_<image>": "with -i: population standard deviation of the same",
    "slice_<n>_dorsal_bridge_width [mm]": "sciseg_analyze_lesion (as SCT 7.3; API: perslice=True): minimum "
                                          "dorsal bridge on sagittal slice n (input "
                                          "index) over its axial slices",
    "slice_<n>_ventral_bridge_width [mm]": "the same, ventral",
    "slice_<n>_total_bridge_width [mm]": "the sum of the two",
}
SHEET_COLUMNS: Dict[str, str] = {  # -f: <base>_lesion_distribution.csv and <base>_ROI_occupied_by_lesion.csv
    "lesion": "lesion id (distribution table: SCT's sheet lesion#<id>_distribution)",
    "row": "vertebral level as SCT prints it (e.g. 4.0), the axial slice (RPI index, -perslice 1), or the total "
           "row total % (all vert|slice)",
    "vert_level": "-perslice 1: the slice's most common level (N/A: none)",
    "PAM50_<NN> [%]": "distribution: share of the lesion's atlas-weighted volume in tract NN at this row; ROI: "
                      "share of tract NN's volume at this row that the lesions occupy (SCT 7.3's arithmetic)",
    "total % (all tracts) [%]": "distribution: the row's sum over tracts",
    "<combined label> [%]": "white matter, gray matter, dorsal columns, ... (atlas info_label.txt): "
                            "distribution: sum of its tracts' cells; ROI: Σ lesion volume / Σ tract volume × 100",
}
COHORT_COLUMNS: Dict[str, str] = {  # lesion_analysis_cohort.csv, before the lesion columns
    "participant": "BIDS participant (sub-...) of the scan, empty outside BIDS",
    "session": "BIDS session (ses-...), empty without one",
    "file": "the input image's file name",
    "row": "lesion (one per lesion) or scan (the scan's totals: volume, length, largest width and damage ratio, "
           "voxels outside the cord, most rostral and caudal level, soft volume)",
    "lesion_count": "scan rows: number of lesions analysed",
}
UNITS = {"participant": "text", "session": "text", "file": "text", "lesion_count": "lesions",
         "label": "id", "interpolated_midsagittal_slice": "slice index", "total_bridge_axial_slice": "slice index",
         "dorsal_bridge_axial_slice": "slice index", "ventral_bridge_axial_slice": "slice index",
         "bridges_from": "text", "voxels": "voxels", "voxels_outside_cord": "voxels", "touches_image_edge": "0/1",
         "note": "text", "level_type": "text", "level_rostral": "level", "level_caudal": "level",
         "levels_spanned": "levels", "level_largest_damage": "level", "mean_<image>": "image units",
         "std_<image>": "image units", "lesion": "id", "row": "text", "vert_level": "level"}


def unit(name: str) -> str:
    """A column's unit: the bracket of its name (``[mm3]`` → mm³, ``[]`` → ratio), else :data:`UNITS`."""
    if name.endswith("]"):
        u = name[name.rindex("[") + 1:-1]
        return {"mm3": "mm³", "": "ratio", "%": "%"}.get(u, u)
    return UNITS.get(name, "")


def markdown() -> str:
    """The README's table of every column: name, unit, definition (generated from this module)."""
    lines = ["| column | unit | definition |", "|---|---|---|"]
    groups = (("SCT", SCT_COLUMNS), ("SCT, by input", PATTERN_COLUMNS), ("this package", OWN_COLUMNS),
              ("cohort table", COHORT_COLUMNS), ("-f tables", SHEET_COLUMNS))
    for group, table in groups:
        for name, text in table.items():
            lines.append(f"| `{name}` | {unit(name)} | {text.replace('|', '/')} ({group}) |")
    return "\n".join(lines) + "\n"


def per_slice_column(slice_number: int, kind: str) -> str:
    """SCT's per-sagittal-slice column (``slice_<n>_<kind>_bridge_width [mm]``, n in input indices)."""
    return f"slice_{int(slice_number)}_{kind}_bridge_width [mm]"


def columns(image_name: str = "", per_slice: Sequence[int] = ()) -> List[str]:
    """Column order: SCT's (with image statistics and per-slice bridges where asked), then own columns."""
    sct = list(SCT_COLUMNS)
    if image_name:
        at = sct.index("max_axial_damage_ratio []") + 1
        sct[at:at] = [c.format(image_name) for c in SCT_IMAGE_COLUMNS]
    sct += [per_slice_column(n, k) for n in per_slice for k in PER_SLICE_KINDS]
    return sct + list(OWN_COLUMNS)


def describe(names: Iterable[str]) -> Dict[str, str]:
    """Descriptions of the given columns (for the JSON sidecar)."""
    out = {}
    for name in names:
        if name in SCT_COLUMNS or name in OWN_COLUMNS:
            out[name] = SCT_COLUMNS.get(name) or OWN_COLUMNS[name]
        elif name.startswith(("mean_", "std_")):
            out[name] = f"{name.split('_', 1)[0]} of the image within the lesion (voxels where the image is not 0)"
        elif name.startswith("slice_"):
            out[name] = "minimum bridge width on this sagittal slice (input index), over its axial slices"
    return out


FLOAT_DIGITS = 15  # significant digits of a float cell: drops binary noise (76.80010560000001 → 76.8001056)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet evaluates text cells starting with these


def number(value: float) -> str:
    """A float as the shortest text that reads back as the value rounded to :data:`FLOAT_DIGITS` significant
    digits (relative change ≤ 5e-15: SCT agreement checked to 1e-12 still holds on the CSV)."""
    return repr(float(format(value, f".{FLOAT_DIGITS}g")))


def cell(value) -> str:
    """One CSV cell: integers as integers, floats to 15 significant digits, NaN/None empty, numpy scalars as
    plain numbers, text that a spreadsheet would execute behind a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return ""
        return number(x) if math.isfinite(x) else ("inf" if x > 0 else "-inf")
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def to_csv(rows: Sequence[Mapping[str, object]], names: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        writer.writerow([cell(row.get(n)) for n in names])
    return buf.getvalue()


def json_value(value):
    """A cell for JSON: NaN and ±Inf → None, numpy scalars → Python numbers."""
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
