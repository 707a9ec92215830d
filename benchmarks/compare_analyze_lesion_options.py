"""Side by side with SCT 7.3's ``sct_analyze_lesion`` for its options: ``-f`` (per level and ``-perslice 1``),
``-nli-slice`` (with and without lesion), the xlsx it writes; and the cost of ``-f`` beside a segmentation.

    python benchmarks/compare_analyze_lesion_options.py [--sct-python /work/sct-envs/7.3/bin/python]
        [--no-segmentation] [--out benchmarks/results/analyze_lesion.md]

Cases: lesions drawn on the shared ``mt/mt1.nii.gz`` cord with its warped template ``mt/label/``, the synthetic
atlas folder of :func:`sct_task_sciseg.analysis.phantoms.atlas_phantom`, and cylinder phantoms for ``-nli-slice``.
SCT runs each case as its console script does (``benchmarks/sct_analyze_lesion_driver.py``); this package runs
the same files. Criteria: the ``measures`` cells as in ``compare_analyze_lesion.py``; every ``-f`` sheet cell
within 1e-9 (relative) of SCT's, same row labels; the xlsx with the same sheet names and ``measures`` columns.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from compare_analyze_lesion import SCT_PYTHON, cell, compare, run_sct  # noqa: E402
from sct_task_sciseg.analysis import analyze_lesion_files, write_analysis  # noqa: E402
from sct_task_sciseg.analysis.phantoms import atlas_phantom, standard, to_image  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "sct_testing_data"
MT = SHARED / "mt"
T2 = SHARED / "t2"
MARKER = "<!-- options: benchmarks/compare_analyze_lesion_options.py -->"


def _save(img, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    return str(path)


def mt1_lesions(folder: Path) -> Dict[str, str]:
    """Two lesion masks drawn on mt1's cord: ``central`` (slices 1-3, a block around the cord centre) and
    ``two`` (a dorsal block on slices 1-3 and a ventrolateral patch on slice 4). The largest lesion is centred
    on slice 2: SCT 7.3 reads slices centre ± 2 without bounds (IndexError above, wrapped indices below)."""
    seg = nib.load(MT / "mt1_seg.nii.gz")
    cord = np.asanyarray(seg.dataobj) > 0
    x, y, z = np.nonzero(cord)
    cx, cy = int(round(x.mean())), int(round(y.mean()))
    xs, ys, zs = np.meshgrid(*(np.arange(n) for n in cord.shape), indexing="ij")
    central = cord & (abs(xs - cx) <= 2) & (abs(ys - cy) <= 2) & (zs >= 1) & (zs <= 3)
    dorsal = cord & (zs >= 1) & (zs <= 3) & (ys <= cy - 1) & (abs(xs - cx) <= 3)
    two = dorsal | (cord & (zs == 4) & (xs >= cx + 2) & (ys >= cy + 1))
    out = {}
    for name, m in (("central", central), ("two", two)):
        out[name] = _save(nib.Nifti1Image(m.astype(np.uint8), seg.affine, seg.header), folder / f"mt1_{name}.nii.gz")
    return out


def build_cases(folder: Path) -> List[dict]:
    cases: List[dict] = []
    if MT.is_dir():
        drawn = mt1_lesions(folder / "mt1")
        cord = str(MT / "mt1_seg.nii.gz")
        label = str(MT / "label")
        cases += [
            {"name": "mt1 central lesion", "option": "-f", "lesion": drawn["central"], "cord": cord,
             "args": ["-f", label]},
            {"name": "mt1 two lesions", "option": "-f", "lesion": drawn["two"], "cord": cord, "args": ["-f", label]},
            {"name": "mt1 two lesions", "option": "-f -perslice 1", "lesion": drawn["two"], "cord": cord,
             "args": ["-f", label, "-perslice", "1"]},
            {"name": "mt1 central lesion", "option": "-nli-slice 2", "lesion": drawn["central"], "cord": cord,
             "args": ["-nli-slice", "2"]},
        ]
    ph = atlas_phantom(folder / "atlas" / "label")
    lesion = _save(ph["lesion"], folder / "atlas" / "lesion.nii.gz")
    cord = _save(ph["cord"], folder / "atlas" / "cord.nii.gz")
    cases += [{"name": "synthetic atlas phantom", "option": "-f", "lesion": lesion, "cord": cord,
               "args": ["-f", str(ph["folder"])]},
              {"name": "synthetic atlas phantom", "option": "-f -perslice 1", "lesion": lesion, "cord": cord,
               "args": ["-f", str(ph["folder"]), "-perslice", "1"]}]
    cyl = standard()
    cyl.cord_centre = (10.25, cyl.cord_centre[1])
    lesion, cord = cyl.images()
    empty = to_image(np.zeros(cyl.shape, bool), cyl.affine())
    d = folder / "nli"
    cases += [{"name": "cylinder phantom, no lesion", "option": "-nli-slice 17",
               "lesion": _save(empty, d / "empty.nii.gz"), "cord": _save(cord, d / "cord.nii.gz"),
               "args": ["-nli-slice", "17"]},
              {"name": "cylinder phantom, one lesion", "option": "-nli-slice 12",
               "lesion": _save(lesion, d / "lesion.nii.gz"), "cord": str(d / "cord.nii.gz"),
               "args": ["-nli-slice", "12"]}]
    if T2.is_dir():
        les = nib.load(T2 / "t2_fake_lesion_lesion_seg.nii.gz")
        axis = "PSR".index("S")  # the file's S-I axis (its orientation is PSR)
        mid = int(np.median(np.nonzero(np.asanyarray(les.dataobj))[axis]))
        cases.append({"name": "t2_fake_lesion (SCIseg masks)", "option": f"-nli-slice {mid}",
                      "lesion": str(T2 / "t2_fake_lesion_lesion_seg.nii.gz"),
                      "cord": str(T2 / "t2_fake_lesion_sc_seg.nii.gz"), "args": ["-nli-slice", str(mid)]})
    for i, c in enumerate(cases):
        c["out"] = str(folder / f"sct{i:03d}")
        c["title"], c["name"] = c["name"], f"{c['name']} [{c['option']}]"  # the driver keys results by name
    return cases


def our_kwargs(args: List[str]) -> dict:
    kw = {"perslice": True}
    for flag, value in zip(args[::2], args[1::2]):
        if flag == "-f":
            kw["template"] = value
        elif flag == "-perslice":
            kw["atlas_per_slice"] = value == "1"
        elif flag == "-nli-slice":
            kw["nli_slice"] = int(value)
    return kw


def _num(v):
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return None if np.isnan(f) else f


def compare_sheet(sct_rows: List[dict], our_rows: List[dict]) -> List[tuple]:
    """(row, column, SCT, ours, |diff|, ok) for every cell of an SCT sheet."""
    out = []
    if [str(r["row"]) for r in sct_rows] != [str(r["row"]) for r in our_rows]:
        return [("rows", "row", [r["row"] for r in sct_rows], [r["row"] for r in our_rows], float("inf"), False)]
    for s, o in zip(sct_rows, our_rows):
        for col, sval in s.items():
            if col == "row":
                continue
            a, b = _num(sval), _num(o.get(col))
            if a is None or b is None or isinstance(a, str) or isinstance(b, str):
                ok = (a is None and b is None) or str(a) == str(b)
                out.append((s["row"], col, sval, o.get(col), 0.0 if ok else float("inf"), ok))
                continue
            diff = abs(a - b)
            out.append((s["row"], col, a, b, diff, diff <= 1e-9 * max(abs(a), 1.0)))
    return out


def run_case(case: dict, sct: dict, folder: Path) -> dict:
    kw = our_kwargs(case.get("args", []))
    t0 = time.perf_counter()
    a = analyze_lesion_files(case["lesion"], case["cord"], **kw)
    seconds = time.perf_counter() - t0
    res = {"case": case, "ours_s": seconds, "measures": [], "sheets": [], "xlsx": None}
    if "rows" not in sct:
        res["error"] = sct.get("error", "SCT did not run")
        return res
    res["measures"] = compare(sct["rows"], a.rows)
    for name, rows in sct.get("sheets", {}).items():
        mine = a.sheets.get(name)
        if mine is None:
            res["sheets"].append((name, "sheet", "present", "missing", float("inf"), False))
            continue
        res["sheets"] += [(f"{name}:{c[0]}",) + c[1:] for c in compare_sheet(rows, mine[1])]
    try:
        import pandas as pd
        out = folder / ("ours_" + Path(case["out"]).name)
        out.mkdir(parents=True, exist_ok=True)
        stem = Path(case["lesion"]).name.replace(".nii.gz", "")
        paths = write_analysis(a, out / stem, xlsx=True)
        theirs = pd.read_excel(Path(case["out"]) / f"{stem}_analysis.xlsx", sheet_name=None)
        ours = pd.read_excel(paths["xlsx"], sheet_name=None)
        res["xlsx"] = (list(theirs) == list(ours)
                       and list(theirs["measures"].columns) == list(ours["measures"].columns))
        res["xlsx_detail"] = (list(theirs), list(ours), list(theirs["measures"].columns),
                              list(ours["measures"].columns))
    except ImportError:
        res["xlsx"] = None
    return res


def cost(folder: Path) -> dict:
    """ms of the analysis with -f of mt1 (files in, median of 5) against the segmentation of mt1.nii.gz (embedded
    model, default settings, warm) in this process."""
    from sct_task_sciseg.pipeline import Segmenter
    from sct_task_sciseg.tasks import SCISEG
    from sct_task_sciseg.weights import install

    drawn = mt1_lesions(folder / "cost")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        analyze_lesion_files(drawn["two"], MT / "mt1_seg.nii.gz", template=MT / "label", perslice=True)
        times.append(time.perf_counter() - t0)
    model = install(SCISEG, SCISEG.demo_release.tag, models_dir=folder / "models",
                    source=str(SCISEG.demo_release.embedded_path()), quiet=True)
    seg = Segmenter(model_folder=model.model_folder, quiet=True)
    img = nib.load(MT / "mt1.nii.gz")
    seg.segment(img)  # warm-up
    t0 = time.perf_counter()
    seg.segment(img)
    t_seg = time.perf_counter() - t0
    t_an = statistics.median(times)
    from sct_task_sciseg.analysis.atlas import load_template
    from sct_task_sciseg.analysis.grid import Grid

    les = nib.load(drawn["two"])
    grid = Grid.of(les.shape, les.affine, les.header.get_zooms())
    t_tm = []
    for _ in range(5):
        t0 = time.perf_counter()
        load_template(MT / "label", les, grid)
        t_tm.append(time.perf_counter() - t0)
    return {"analysis_ms": t_an * 1e3, "segmentation_ms": t_seg * 1e3, "ratio": t_an / t_seg,
            "template_ms": statistics.median(t_tm) * 1e3, "load": os.getloadavg()[0]}


def report(results: List[dict], cost_row) -> str:
    lines = ["# Lesion analysis options: side by side with SCT 7.3 `sct_analyze_lesion`", "",
             "Generated by `python benchmarks/compare_analyze_lesion_options.py`. `measures` cells: the criteria "
             "of `compare_analyze_lesion.py`; `-f` sheet cells: within 1e-9 relative, same row labels; xlsx: same "
             "sheet names and `measures` columns read with `pandas.read_excel`.", "",
             "| option | case | measures cells (agree) | sheet cells (agree) | max abs diff | xlsx same sheets and "
             "columns | SCT s | ours ms |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["case"]
        if "error" in r:
            lines.append(f"| `{c['option']}` | {c['title']} | SCT failed: `{r['error']}` | | | | | "
                         f"{r['ours_s'] * 1e3:.1f} |")
            continue
        cells = r["measures"] + r["sheets"]
        worst = max((x[4] for x in cells), default=0.0)
        lines.append(f"| `{c['option']}` | {c['title']} | {len(r['measures'])} ({sum(x[5] for x in r['measures'])}) | "
                     f"{len(r['sheets'])} ({sum(x[5] for x in r['sheets'])}) | {worst:.2g} | "
                     f"{'yes' if r['xlsx'] else 'no' if r['xlsx'] is not None else '–'} | "
                     f"{r.get('sct_s', 0):.2f} | {r['ours_s'] * 1e3:.1f} |")
    for r in results:
        if "error" in r or not r["sheets"]:
            continue
        c = r["case"]
        lines += ["", f"### `{c['option']}`, {c['title']}: ROI_occupied_by_lesion, non-zero cells", "",
                  "| sheet:row | column | SCT 7.3 | sct_task_sciseg | abs diff |", "|---|---|---|---|---|"]
        for row, col, a, b, diff, ok in r["sheets"]:
            if row.startswith("ROI") and isinstance(a, float) and a != 0:
                lines.append(f"| {row} | {col} | {cell(a)} | {cell(b)} | {diff:.2g}{'' if ok else ' **FAIL**'} |")
        break
    for r in results:
        if "error" in r or not r["case"]["option"].startswith("-nli"):
            continue
        c = r["case"]
        lines += ["", f"### `{c['option']}`, {c['title']}: measures", "",
                  "| label | column | SCT 7.3 | sct_task_sciseg | abs diff |", "|---|---|---|---|---|"]
        for label, col, a, b, diff, ok in r["measures"]:
            if not col.startswith("slice_"):
                lines.append(f"| {label} | {col} | {cell(a)} | {cell(b)} | {diff:.2g}{'' if ok else ' **FAIL**'} |")
    lines += ["", "SCT s: one `sct_analyze_lesion` process per case. Ours ms: one `analyze_lesion_files` call in this "
              "process, files in (the first call also imports scipy's spline code); with `-f` most of it is reading "
              "the 37 compressed atlas maps."]
    bad = [(r["case"]["option"], r["case"]["name"], x) for r in results for x in r["measures"] + r["sheets"]
           if not x[5]]
    lines += ["", f"Cells outside the criteria: {len(bad)}" + ("" if not bad else f" (first: {bad[:3]})"), ""]
    if cost_row:
        lines += ["### Cost of `-f` beside a segmentation (same process)", "",
                  "| input | analysis with -f, ms (files in, median of 5) | segmentation, ms (embedded model, warm) | "
                  "ratio |", "|---|---|---|---|",
                  f"| mt/mt1.nii.gz 40×40×5, two lesions, mt/label (36 tracts) | {cost_row['analysis_ms']:.1f} | "
                  f"{cost_row['segmentation_ms']:.0f} | {cost_row['ratio'] * 100:.1f} % |", "",
                  f"Of the analysis, reading the template folder takes {cost_row['template_ms']:.0f} ms. mt1 is a "
                  "40×40×5 slab: its segmentation is short, and SCIsegV2's takes 15–200 s on the shared volumes "
                  "(`benchmarks/results.md`); the machine was shared with other work (load average "
                  f"{cost_row['load']:.1f} on 2 cores).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sct-python", type=Path, default=SCT_PYTHON)
    p.add_argument("--no-segmentation", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "analyze_lesion.md",
                   help="written after the marker line (the part above it is compare_analyze_lesion.py's)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sciseg-options-") as tmp:
        cases = build_cases(Path(tmp))
        sct = run_sct(cases, args.sct_python, workers=1) if args.sct_python.is_file() else {}
        results = []
        for c in cases:
            s = sct.get(c["name"], {})
            r = run_case(c, s, Path(tmp))
            r["sct_s"] = s.get("seconds", 0.0)
            results.append(r)
        cost_row = None if args.no_segmentation else cost(Path(tmp))
    text = report(results, cost_row)
    old = args.out.read_text() if args.out.is_file() else ""
    head = old.split(MARKER)[0].rstrip("\n") + "\n\n" if old else ""
    text = text.replace("# Lesion analysis options", "## Lesion analysis options", 1)
    args.out.write_text(head + MARKER + "\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
