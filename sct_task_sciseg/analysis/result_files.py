"""Writing an analysis: ``<base>_analysis.csv``, ``<base>_label.nii.gz`` and the JSON sidecar
``<base>_analysis.json``; with ``-f`` the atlas sheets as ``<base>_lesion_distribution.csv`` (SCT's
``lesion#N_distribution`` sheets stacked, a leading ``lesion`` column) and ``<base>_ROI_occupied_by_lesion.csv``;
with ``xlsx`` SCT's spreadsheet ``<base>_analysis.xlsx``. Every file is serialised first, then all are written
together or none (:func:`~sct_task_sciseg.io.atomic.atomic_write_all`)."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .. import __version__
from ..errors import OutputError
from ..io.atomic import Content, atomic_write_all
from ..io.hashing import sha256_file
from ..io.nifti import image_content
from ..io.outputs import ROI_SHEET, analysis_paths
from .table import SCT_COLUMNS, describe, json_value, to_csv

ANALYSIS_NAME = "lesion morphometrics (definitions of SCT 7.3 sct_analyze_lesion)"
SCHEMA = 2  # 2: side, level and soft columns; 15-digit CSV floats


def sidecar(analysis, provenance: Optional[dict] = None, hash_sources: bool = True) -> dict:
    """What the JSON sidecar holds; ``provenance`` (of the segmentation that made the masks) is kept as is so
    that a batch can tell whether the analysis is up to date. Sources are hashed unless ``hash_sources`` is
    False (masks analysed in memory before they are written: their segmentation provenance identifies them)."""
    sources = {}
    for role, path in analysis.sources.items():
        p = Path(path)
        sources[role] = {"file": p.name, "sha256": sha256_file(p) if hash_sources and p.is_file() else None}
    return {
        "GeneratedBy": [{"Name": "sct_task_sciseg", "Version": __version__, "Analysis": ANALYSIS_NAME,
                         "Parameters": analysis.parameters}],
        "Schema": SCHEMA,
        "Sources": sources,
        "Segmentation": provenance,
        "Summary": {k: json_value(v) for k, v in analysis.summary.items()},
        "Columns": describe(analysis.columns),
        "Lesions": [{k: json_value(r.get(k)) for k in analysis.columns} for r in analysis.rows],
    }


def distribution_table(analysis) -> Tuple[List[str], List[dict]]:
    """The ``lesion#N_distribution`` sheets stacked: (columns, rows) with a leading ``lesion`` column."""
    names: List[str] = []
    rows: List[dict] = []
    for sheet, (cols, sheet_rows) in analysis.sheets.items():
        if sheet == ROI_SHEET:
            continue
        names = ["lesion"] + list(cols)
        label = int(sheet.split("#")[1].split("_")[0])
        rows += [dict(r, lesion=label) for r in sheet_rows]
    return names, rows


def sct_sheets(analysis) -> Dict[str, Tuple[List[str], List[dict]]]:
    """SCT's spreadsheet: ``measures`` (SCT's columns only, SCT's order), then the ``-f`` sheets."""
    cols = [c for c in analysis.columns if c in SCT_COLUMNS or c.startswith(("mean_", "std_", "slice_"))]
    if not any(r.get("label") for r in analysis.rows):  # no lesion: SCT's columns of its -nli-slice row only
        first = cols.index("max_axial_damage_ratio []") + 1
        cols = cols[:first] + [c for c in cols[first:] if c.startswith(("mean_", "std_"))
                               or any(r.get(c) is not None for r in analysis.rows)]
    return {"measures": (cols, analysis.rows), **analysis.sheets}


def xlsx_writer() -> Optional[str]:
    """The installed xlsx library: ``openpyxl`` (extra ``xlsx``), else ``xlsxwriter`` (SCT's environment has
    it), else None."""
    import importlib.util

    for name in ("openpyxl", "xlsxwriter"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def xlsx_content(sheets: Dict[str, Tuple[List[str], List[dict]]]):
    """A writer of the .xlsx: one sheet per entry, a header row, then the rows (NaN → empty cell); text is
    never stored as a formula."""
    table = [(name[:31], list(cols), [[json_value(r.get(c)) for c in cols] for r in rows])
             for name, (cols, rows) in sheets.items()]
    if xlsx_writer() == "openpyxl":
        from openpyxl import Workbook

        wb = Workbook()
        wb.remove(wb.active)
        for name, cols, rows in table:
            ws = wb.create_sheet(name)
            for row in [cols] + rows:
                ws.append(row)
            for line in ws.iter_rows(min_row=2):
                for c in line:
                    if isinstance(c.value, str) and c.value.startswith("="):
                        c.data_type = "s"
        return wb.save

    def write(fh) -> None:
        import xlsxwriter

        buf = io.BytesIO()
        wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                       "strings_to_numbers": False})
        for name, cols, rows in table:
            ws = wb.add_worksheet(name)
            for i, row in enumerate([cols] + rows):
                for j, value in enumerate(row):
                    if value is not None:
                        ws.write(i, j, value)
        wb.close()
        fh.write(buf.getvalue())
    return write


def analysis_files(analysis, paths: Dict[str, Path], provenance: Optional[dict] = None,
                   hash_sources: bool = True) -> List[Tuple[Path, Content]]:
    """The table, the lesion-id image, the ``-f`` sheets and the spreadsheet (when ``paths`` holds them) and
    the sidecar as ``(path, content)`` for one all-or-none write."""
    files = [(paths["csv"], to_csv(analysis.rows, analysis.columns)),
             (paths["label"], image_content(analysis.label_img, paths["label"]))]
    if "distribution" in paths:
        files.append((paths["distribution"], to_csv(*reversed(distribution_table(analysis)))))
        roi_cols, roi_rows = analysis.sheets[ROI_SHEET]
        files.append((paths["roi"], to_csv(roi_rows, roi_cols)))
    if "xlsx" in paths:
        files.append((paths["xlsx"], xlsx_content(sct_sheets(analysis))))
    files.append((paths["json"], json.dumps(sidecar(analysis, provenance, hash_sources), indent=1,
                                            allow_nan=False) + "\n"))
    return files


def write_analysis(analysis, out_base: Union[str, Path], provenance: Optional[dict] = None,
                   label_suffix: str = ".nii.gz", hash_sources: bool = True, xlsx: bool = False) -> Dict[str, Path]:
    """Write the table, the lesion-id image, the ``-f`` sheets, the spreadsheet (``xlsx``) and the sidecar:
    all of them or none."""
    paths = analysis_paths(out_base, label_suffix, sheets=bool(analysis.sheets), xlsx=xlsx)
    sources = {Path(v).resolve(): role for role, v in analysis.sources.items()}
    for p in paths.values():
        if p.resolve() in sources:
            raise OutputError(f"{p}: is the analysis's {sources[p.resolve()]} input; it would be overwritten")
    atomic_write_all(analysis_files(analysis, paths, provenance, hash_sources))
    return paths
