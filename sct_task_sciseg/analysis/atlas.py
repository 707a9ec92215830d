"""``-f TEMPLATE_FOLDER``: where each lesion lies in the white-matter atlas, with SCT 7.3's arithmetic.

The folder is what ``sct_warp_template`` writes: ``atlas/PAM50_atlas_NN.nii.gz`` (partial-volume tract maps in
[0, 1]; ids ≥ 36, the CSF, are left out as SCT does), ``atlas/info_label.txt`` (tract names and the combined
labels: white matter, gray matter, dorsal columns, ...) and ``template/PAM50_levels.nii.gz`` (vertebral levels).

Rows are the non-zero values of the level image (``row`` = the value as SCT prints it, e.g. ``4.0`` for a float
image), or with ``perslice`` every axial slice (RPI index, as SCT) with its most common level ``vert_level``.
For a row r and tract t, with L the lesion mask and A_t the tract's weights, both restricted to the row:
``vol(r, t) = Σ L·A_t × voxel volume`` and ``tot(r, t) = Σ A_t × voxel volume``.

- ``lesion#N_distribution`` (the lesion is the reference): ``PAM50_t = vol(r, t) × 100 / Σ_r,t vol`` on rows
  where the lesion has a voxel with a non-zero level, 0 elsewhere; ``total % (all tracts)`` = the row's sum;
  each combined label = the sum of its tracts' cells; last row ``total % (all vert|slice)`` = column sums.
- ``ROI_occupied_by_lesion`` (the region is the reference; all lesions together): ``PAM50_t = vol × 100 / tot``
  and each combined label ``Σ vol × 100 / Σ tot`` over its tracts, on rows holding lesion and on the total row
  (the whole image); other rows 0 (combined labels empty). A combined label equal to all tracts is dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import nibabel as nib
import numpy as np

from ..errors import InputError
from .mask_files import load_mask
from .grid import same_grid
from .levels import slice_levels

TRACT_LIMIT = 36  # SCT: "Not interested in CSF"
LEVELS_FILE = Path("template") / "PAM50_levels.nii.gz"
ATLAS_DIR = "atlas"
TOTAL_TRACTS = "total % (all tracts)"


@dataclass
class Template:
    """The atlas and level image of a template folder, on the analysis grid (RPI)."""

    levels: np.ndarray
    tracts: Dict[int, np.ndarray]
    names: Dict[int, str] = field(default_factory=dict)
    combined: Dict[str, List[int]] = field(default_factory=dict)
    folder: str = ""

    def column(self, tract: int) -> str:
        return f"PAM50_{tract:02}"

    def side_tracts(self, side: str) -> List[int]:
        """Tracts whose name says ``left`` or ``right``."""
        return [t for t, n in self.names.items() if re.search(rf"\b{side}\b", n, re.IGNORECASE)]


def parse_info_label(text: str) -> Tuple[Dict[int, str], Dict[str, List[int]]]:
    """(tract id → name, combined label name → tract ids) of an ``info_label.txt`` (lines ``id, name, file`` or
    ``id, name, 0:3,7``; the last ``", "`` ends the name, as SCT reads it)."""
    names: Dict[int, str] = {}
    combined: Dict[str, List[int]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        found = re.match(r"^# Keyword=(\w+)", line)
        if found:
            section = found.group(1)
            continue
        m = re.match(r"^(\d+), (.*), (.*)$", line)
        if line.startswith("#") or m is None:
            continue
        if section == "IndivLabels":
            names[int(m.group(1))] = m.group(2)
        elif section == "CombinedLabels":
            combined[m.group(2)] = _id_list(m.group(3))
    return names, combined


def _id_list(spec: str) -> List[int]:
    """``0:3,7`` → [0, 1, 2, 3, 7]."""
    out: List[int] = []
    for part in spec.replace(";", ",").split(","):
        part = part.strip()
        if ":" in part:
            a, b = part.split(":")
            out += list(range(int(a), int(b) + 1))
        elif part.isdigit():
            out.append(int(part))
    return out


def atlas_files(folder: Path) -> List[Tuple[int, Path]]:
    """(tract id, file) of the atlas maps SCT reads (name ``*_<id>.nii.gz``, id < 36), in SCT's order."""
    atlas = Path(folder) / ATLAS_DIR
    if not atlas.is_dir():
        raise InputError(f"{folder}: no {ATLAS_DIR}/ folder (expected the output of sct_warp_template)")
    out = []
    for p in sorted(atlas.iterdir(), key=lambda q: q.name):
        if p.name.endswith(".nii.gz"):
            tail = p.name[: -len(".nii.gz")].split("_")[-1]
            if not tail.isdigit():
                raise InputError(f"{p}: atlas file name does not end in _<tract id>.nii.gz")
            if int(tail) < TRACT_LIMIT:
                out.append((int(tail), p))
    if not out:
        raise InputError(f"{atlas}: no atlas maps (*_NN.nii.gz)")
    return out


def _rpi(img, reference, grid, path: Path) -> np.ndarray:
    same_grid(reference, img, str(path))
    try:
        data = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise InputError(f"{path}: unreadable data ({exc})") from None
    data = data.reshape(data.shape[:3]) if data.ndim == 4 else data
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise InputError(f"{path}: NaN or infinite weights")
    return grid.to_rpi(data)


def load_template(folder, reference, grid) -> Template:
    """Read a template folder whose images share ``reference``'s (the lesion mask's) grid, reoriented to RPI."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected the template folder sct_warp_template writes)")
    levels_path = folder / LEVELS_FILE
    if not levels_path.is_file():
        raise InputError(f"{folder}: no {LEVELS_FILE} (warp the template with sct_warp_template first)")
    arrays = {"levels": _rpi(load_mask(levels_path, "template level image"), reference, grid, levels_path)}
    for tract, path in atlas_files(folder):  # the header checks of the level image stand for its siblings
        try:
            img = nib.load(str(path))
        except Exception as exc:  # nibabel raises many kinds for a damaged file
            raise InputError(f"{path}: unreadable atlas map ({exc})") from None
        arrays[tract] = _rpi(img, reference, grid, path)
    names, combined = {}, {}
    info = folder / ATLAS_DIR / "info_label.txt"
    if info.is_file():
        names, combined = parse_info_label(info.read_text(errors="replace"))
    tracts = {t: a for t, a in arrays.items() if t != "levels"}
    combined = {k: v for k, v in combined.items() if set(v) != set(tracts)}
    return Template(arrays["levels"], tracts, names, combined, str(folder))


@dataclass
class Rows:
    """The rows of the sheets: names, an index per row (``np.where`` of a level, or an axial slice), and the
    per-slice level column."""

    kind: str  # vert | slice
    names: List[str]
    masks: List[tuple]
    vert_level: Optional[List[object]] = None

    @property
    def total(self) -> str:
        return f"total % (all {self.kind})"


def make_rows(template: Template, perslice: bool) -> Rows:
    lv = template.levels
    if not perslice:
        values = [v for v in np.unique(lv) if v]
        return Rows("vert", [str(v) for v in values], [np.nonzero(lv == v) for v in values])
    masks = [(slice(None), slice(None), z) for z in range(lv.shape[2])]
    return Rows("slice", [str(z) for z in range(lv.shape[2])], masks,
                [int(v) if v else "N/A" for v in slice_levels(lv)])


def _volumes(lesion: np.ndarray, weights: np.ndarray, keep: tuple, voxel: Tuple[float, float, float]):
    """SCT's ``__relative_ROIvol_in_mask``: (Σ lesion·weights, Σ weights) on ``keep``, × voxel volume."""
    px, py, pz = voxel
    w = weights[keep]
    return np.sum(lesion[keep] * w) * px * py * pz, np.sum(w) * px * py * pz


def _nansum(values) -> float:
    """pandas' sum: NaN cells skipped, 0 when all are NaN (a lesion with no voxel on a labelled level has NaN
    shares, and SCT's totals of them are 0)."""
    kept = [float(v) for v in values if not np.isnan(v)]
    return float(np.sum(kept)) if kept else 0.0


def lesion_distribution(lesion: np.ndarray, template: Template, rows: Rows, voxel) -> List[Dict[str, object]]:
    """Sheet ``lesion#N_distribution`` of one lesion (full RPI boolean mask)."""
    has_level = lesion & (template.levels != 0)
    cells = {r: {t: 0.0 for t in template.tracts} for r in range(len(rows.names))}
    total = 0.0
    for r, keep in enumerate(rows.masks):
        if np.count_nonzero(has_level[keep]):
            for t, weights in template.tracts.items():
                vol, _ = _volumes(lesion, weights, keep, voxel)
                cells[r][t] = vol
                total += vol
    out = []
    for r, name in enumerate(rows.names):
        row: Dict[str, object] = {"row": name}
        if rows.vert_level is not None:
            row["vert_level"] = rows.vert_level[r]
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = {t: float(np.float64(cells[r][t]) * 100.0 / np.float64(total)) for t in template.tracts}
        row.update({template.column(t): pct[t] for t in template.tracts})
        row[TOTAL_TRACTS] = _nansum(pct[t] for t in template.tracts)
        for name_c, ids in template.combined.items():
            row[name_c] = _nansum(pct[t] for t in ids if t in pct)
        out.append(row)
    numeric = [k for k in out[0] if k not in ("row", "vert_level")] if out else []
    total: Dict[str, object] = {"row": rows.total}
    if rows.vert_level is not None:  # SCT sums every numeric column, the levels too when none is N/A
        levels = [r["vert_level"] for r in out]
        total["vert_level"] = float(sum(levels)) if all(isinstance(v, int) for v in levels) else None
    out.append({**total, **{k: _nansum(r[k] for r in out) for k in numeric}})
    return out


def roi_occupied(lesion: np.ndarray, template: Template, rows: Rows, voxel) -> List[Dict[str, object]]:
    """Sheet ``ROI_occupied_by_lesion`` (every lesion together, full RPI boolean mask)."""
    has_level = lesion & (template.levels != 0)
    everything = (slice(None), slice(None), slice(None))
    out = []
    for name, keep, vert in zip(rows.names + [rows.total], rows.masks + [everything],
                                (rows.vert_level or [None] * len(rows.names)) + [""]):
        row: Dict[str, object] = {"row": name}
        if rows.vert_level is not None:
            row["vert_level"] = vert
        if keep is everything or np.count_nonzero(has_level[keep]):
            res = {t: _volumes(lesion, w, keep, voxel) for t, w in template.tracts.items()}
            with np.errstate(invalid="ignore", divide="ignore"):
                row.update({template.column(t): float(np.float64(v) * 100.0 / np.float64(tot))
                            for t, (v, tot) in res.items()})
                for name_c, ids in template.combined.items():
                    sel = [t for t in res if t in ids]
                    row[name_c] = float(np.sum([res[t][0] for t in sel]) * 100.0 / np.sum([res[t][1] for t in sel]))
        else:
            row.update({template.column(t): 0.0 for t in template.tracts})
            row.update({name_c: None for name_c in template.combined})
        out.append(row)
    return out


def sheet_columns(template: Template, rows: Rows, per_lesion: bool) -> List[str]:
    cols = ["row"] + (["vert_level"] if rows.vert_level is not None else [])
    cols += [template.column(t) for t in template.tracts]
    if per_lesion:
        cols.append(TOTAL_TRACTS)
    return cols + list(template.combined)


def side_shares(sheet: List[Dict[str, object]], template: Template) -> Tuple[float, float]:
    """(left, right) share of a lesion's atlas-weighted volume in left- and right-named tracts (%), from the
    total row of its distribution sheet."""
    total = sheet[-1]
    return tuple(float(sum(total.get(template.column(t), 0.0) for t in template.side_tracts(s)))
                 for s in ("left", "right"))
