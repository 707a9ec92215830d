"""One table for a whole batch: every lesion of every scan, and one summary row per scan.

Fed from the per-scan analyses (in memory for scans analysed now, from their JSON sidecars for scans a resumed
batch skipped). Columns: ``participant``, ``session``, ``file``, ``row`` (``lesion`` or ``scan``), then the
lesion columns. On a ``scan`` row ``label`` is empty, ``lesion_count`` is set, and the volume, length and damage
ratio columns hold the scan's totals: total volume, total length (sum over lesions, as SCT prints it) and the
largest damage ratio; ``voxels_outside_cord`` the scan's lesion voxels outside the cord; the level columns the
scan's most rostral and caudal lesion level, ``soft_volume [mm3]`` the scan's soft volume inside the cord. Cells
are written as in the per-scan tables (:func:`~sct_task_sciseg.analysis.table.cell`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from ..analysis.table import OWN_COLUMNS, SCT_COLUMNS, to_csv
from ..io.atomic import atomic_write
from ..qc.entry import ScanContext

COHORT_NAME = "lesion_analysis_cohort.csv"
KEYS = ("participant", "session", "file", "row", "lesion_count")


def scan_rows(image_path: Path, rows: Sequence[dict], summary: dict) -> List[dict]:
    """The lesion rows of one scan (a scan without lesion has none) and its summary row."""
    ctx = ScanContext.of(Path(image_path))
    ids = {"participant": ctx.subject or "", "session": ctx.session or "", "file": Path(image_path).name}
    out = [dict(ids, row="lesion", **r) for r in rows if r.get("label")]
    out.append(dict(ids, row="scan", label=None, lesion_count=summary.get("lesion_count"),
                    **{"volume [mm3]": summary.get("total_volume [mm3]"),
                       "length [mm]": summary.get("total_length [mm]"),
                       "width [mm]": summary.get("max_width [mm]"),
                       "max_axial_damage_ratio []": summary.get("max_axial_damage_ratio []"),
                       "interpolated_midsagittal_slice": summary.get("interpolated_midsagittal_slice"),
                       "voxels_outside_cord": summary.get("voxels_outside_cord"),
                       "volume_outside_cord [mm3]": summary.get("volume_outside_cord [mm3]"),
                       "level_type": summary.get("level_type"), "level_rostral": summary.get("level_rostral"),
                       "level_caudal": summary.get("level_caudal"),
                       "soft_volume [mm3]": summary.get("soft_volume [mm3]")}))
    return out


def from_sidecar(path: Path) -> Optional[tuple]:
    """(rows, summary) of an analysis JSON sidecar, None when it cannot be read."""
    try:
        data = json.loads(Path(path).read_text())
        return data["Lesions"], data["Summary"]
    except (OSError, ValueError, KeyError):
        return None


def cohort_columns(rows: Iterable[dict]) -> List[str]:
    names = list(KEYS) + list(SCT_COLUMNS)
    extra = [k for r in rows for k in r if k not in names and k not in OWN_COLUMNS]
    names += list(dict.fromkeys(extra)) + list(OWN_COLUMNS)
    return names


def write_cohort(scans: Sequence[tuple], folder: Path) -> Path:
    """Write ``folder/lesion_analysis_cohort.csv`` from ``(image path, rows, summary)`` per scan."""
    rows: List[Dict[str, object]] = []
    for image_path, lesion_rows, summary in scans:
        rows += scan_rows(image_path, lesion_rows, summary)
    path = Path(folder) / COHORT_NAME
    return atomic_write(path, to_csv(rows, cohort_columns(rows)))
