"""Side by side with SCT 7.3's ``sct_analyze_lesion``: every SCT column on the same masks, and the cost.

    python benchmarks/compare_analyze_lesion.py [--sct-python /work/sct-envs/7.3/bin/python] [--random 20]
        [--no-segmentation] [--out benchmarks/results/analyze_lesion.md]

Cases: the shared ``t2_fake_lesion`` SCIseg masks, analytic phantoms (straight, tilted, 3 mm slices, two lesions,
partly outside the cord, off the midsagittal slices, on one of the two interpolation slices, oblique, non-RPI
storage) and seeded random phantoms in random orientations. SCT runs each case as its console script does (one
process per case, timed); this package runs the same files in this process. Agreement criteria (the issue's):
volume exact (relative 1e-9), lengths/widths/bridges within max(0.1 mm, 2 %), damage ratio within 0.01,
midsagittal slice within 0.05. The cost part times the analysis against a segmentation of the same scan
(embedded model, same process) — goal: under 5 %.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sct_task_sciseg.analysis import analyze_lesion_files, analyze_lesions  # noqa: E402
from sct_task_sciseg.analysis.phantoms import Ellipsoid, Phantom, all_orientations, standard  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "sct_testing_data" / "t2"
SCT_PYTHON = Path("/work/sct-envs/7.3/bin/python")
DRIVER = Path(__file__).with_name("sct_analyze_lesion_driver.py")


def _rotation(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    r = np.eye(4)
    r[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return r


def phantoms() -> Dict[str, tuple]:
    """name → (phantom, nibabel ornt or None, affine or None)."""
    two = standard()
    two.lesions = [Ellipsoid((10.0, 13.63, 10.31), (1.5, 2.0, 3.0)), Ellipsoid((10.0, 14.63, 28.31), (2.0, 1.5, 4.0))]
    outside = standard()
    outside.lesions = [Ellipsoid((10.0, 17.6, 20.31), (1.5, 2.0, 6.0))]
    off_mid = standard()
    off_mid.lesions = [Ellipsoid((12.9, 14.13, 20.31), (0.9, 1.0, 4.0))]
    one_of_two = standard()
    one_of_two.cord_centre = (10.2, one_of_two.cord_centre[1])
    one_of_two.lesions = [Ellipsoid((10.5, 14.13, 20.31), (0.3, 1.5, 4.0))]
    psr = np.array([[1, -1], [2, -1], [0, 1]], dtype=float)  # stored like t2_fake_lesion (axis codes P, S, R)
    straight = standard()
    return {
        "phantom straight 0.5×0.5×1 mm": (straight, None, None),
        "phantom tilted 20°": (standard(tilt_deg=20.0), None, None),
        "phantom 3 mm slices": (standard((0.5, 0.5, 3.0)), None, None),
        "phantom two lesions": (two, None, None),
        "phantom partly outside the cord": (outside, None, None),
        "phantom off the midsagittal slices": (off_mid, None, None),
        "phantom on one of two interpolation slices": (one_of_two, None, None),
        "phantom stored PSR": (straight, psr, None),
        "phantom oblique 12°": (standard(tilt_deg=8.0), psr, _rotation(12.0) @ straight.affine()),
    }


def random_phantom(seed: int):
    rng = np.random.default_rng(seed)
    zooms = tuple(float(z) for z in rng.choice([0.4, 0.5, 0.8], size=2)) + (float(rng.choice([0.8, 1.0, 2.0])),)
    zooms = (zooms[0], zooms[0], zooms[2])
    tilt = float(rng.uniform(-20, 20))
    ph = standard(zooms, tilt)
    ph.cord_radius = float(rng.uniform(3.5, 5.0))
    ph.lesions = []
    for _ in range(int(rng.integers(1, 4))):
        c = float(rng.uniform(1.5, 6.0))
        w = float(rng.uniform(c + 4.0, 36.0 - c))
        u, v = rng.uniform(-1.5, 1.5), rng.uniform(-2.0, 2.0)
        t = np.deg2rad(tilt)
        y = ph.cord_centre[1] + (w * np.cos(t)) * np.tan(t) + v / np.cos(t)
        ph.lesions.append(Ellipsoid((ph.cord_centre[0] + u, y, w * np.cos(t)),
                                    (float(rng.uniform(0.6, 2.0)), float(rng.uniform(0.6, 2.2)), c)))
    orientations = all_orientations()
    return ph, orientations[int(rng.integers(len(orientations)))], None


def build_cases(folder: Path, n_random: int = 0, names=None) -> List[dict]:
    """Write every case's masks under ``folder``; returns the case list for the SCT driver."""
    cases = [{"name": "t2_fake_lesion (SCIseg masks)", "lesion": str(DATA / "t2_fake_lesion_lesion_seg.nii.gz"),
              "cord": str(DATA / "t2_fake_lesion_sc_seg.nii.gz")}] if DATA.is_dir() else []
    table = dict(phantoms())
    table.update({f"random phantom {i}": random_phantom(i) for i in range(n_random)})
    for i, (name, (ph, ornt, affine)) in enumerate(table.items()):
        if names is not None and name not in names:
            continue
        lesion, cord = ph.images(ornt, affine)
        if not np.asanyarray(lesion.dataobj).any():
            continue
        case_dir = folder / f"case{i:03d}"
        case_dir.mkdir(parents=True, exist_ok=True)
        nib.save(lesion, case_dir / "lesion.nii.gz")
        nib.save(cord, case_dir / "cord.nii.gz")
        cases.append({"name": name, "lesion": str(case_dir / "lesion.nii.gz"), "cord": str(case_dir / "cord.nii.gz")})
    for i, c in enumerate(cases):
        c["out"] = str(folder / f"sct{i:03d}")
    return cases


def run_sct(cases: List[dict], sct_python: Path, workers: int = 2) -> Dict[str, dict]:
    spec = Path(cases[0]["out"]).parent / "cases.json"
    spec.write_text(json.dumps(cases))
    proc = subprocess.run([str(sct_python), str(DRIVER), str(spec), str(workers)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"SCT driver failed: {proc.stderr.strip().splitlines()[-1:]}")
    return {r["name"]: r for r in json.loads(proc.stdout)}


def tolerance(column: str, sct_value: float) -> float:
    """The issue's agreement criterion for one SCT column."""
    if column == "volume [mm3]":
        return 1e-9 * max(abs(sct_value), 1.0)
    if column == "max_axial_damage_ratio []":
        return 0.01
    if column == "interpolated_midsagittal_slice":
        return 0.05
    if column.endswith("[%]"):
        return max(0.1, 0.02 * abs(sct_value))  # ratios of bridges: as the bridges
    return max(0.1, 0.02 * abs(sct_value))


def compare(sct_rows: List[dict], our_rows: List[dict]) -> List[tuple]:
    """(label, column, SCT, ours, |diff|, ok) for every SCT cell."""
    ours = {r["label"]: r for r in our_rows}
    out = []
    for srow in sct_rows:
        mine = ours.get(srow["label"], {})
        for col, sval in srow.items():
            if col == "label" or sval is None:
                continue
            val = mine.get(col)
            if val is None or (isinstance(val, float) and np.isnan(val)):
                out.append((srow["label"], col, sval, None, float("inf"), False))
                continue
            diff = abs(float(val) - float(sval))
            out.append((srow["label"], col, sval, float(val), diff, diff <= tolerance(col, float(sval))))
    if len(ours) != len(sct_rows):
        out.append((None, "lesion count", len(sct_rows), len(ours), abs(len(ours) - len(sct_rows)), False))
    return out


def run_ours(case: dict, repeat: int = 5) -> tuple:
    """(rows, seconds per call incl. reading the files, seconds of the analysis alone)."""
    t0 = time.perf_counter()
    for _ in range(repeat):
        analysis = analyze_lesion_files(case["lesion"], case["cord"], perslice=True)
    with_io = (time.perf_counter() - t0) / repeat
    lesion, cord = nib.load(case["lesion"]), nib.load(case["cord"])
    lesion, cord = nib.Nifti1Image(np.asanyarray(lesion.dataobj), lesion.affine, lesion.header), \
        nib.Nifti1Image(np.asanyarray(cord.dataobj), cord.affine, cord.header)
    t0 = time.perf_counter()
    for _ in range(repeat):
        analyze_lesions(lesion, cord, perslice=True)
    return analysis.rows, with_io, (time.perf_counter() - t0) / repeat


def segmentation_cost(folder: Path) -> List[dict]:
    """Seconds of one segmentation (embedded model, default settings) and of the analysis of its masks, for
    t2_fake_lesion and a 320×320×40 synthetic axial volume, in this process."""
    from sct_task_sciseg.analysis import analyze_masks
    from sct_task_sciseg.pipeline import Segmenter
    from sct_task_sciseg.tasks import SCISEG
    from sct_task_sciseg.weights import install

    model = install(SCISEG, SCISEG.demo_release.tag, models_dir=folder / "models",
                    source=str(SCISEG.demo_release.embedded_path()), quiet=True)
    seg = Segmenter(model_folder=model.model_folder, quiet=True)
    big = np.random.default_rng(0).normal(100, 10, (320, 320, 40)).astype(np.float32)
    yy, xx = np.mgrid[:320, :320]
    big[((xx - 160) ** 2 + (yy - 150) ** 2) < 20 ** 2] += 150
    axial = nib.Nifti1Image(big, np.diag([0.5, 0.5, 3.0, 1.0]))
    inputs = {"t2_fake_lesion 99×99×29": nib.load(DATA / "t2_fake_lesion.nii.gz"),
              "axial 320×320×40 (synthetic; analysed: phantom masks)": axial}
    out = []
    for name, img in inputs.items():
        result = seg.segment(img)  # warm-up: model load and compilation are not per-scan costs
        masks = result.masks
        if not np.asanyarray(masks["lesion"].dataobj).any():  # the phantom model sees no lesion on the synthetic
            two = [Ellipsoid((80.0, 74.5, 60.3), (1.5, 2.0, 6.0)), Ellipsoid((80.0, 75.5, 90.3), (2.0, 1.5, 8.0))]
            ph = Phantom(img.shape, tuple(float(z) for z in img.header.get_zooms()), 4.0, (80.0, 75.0), 0.0, two)
            lesion, cord = ph.images()  # same grid size: an analytic cord with two lesions instead
            masks = {"lesion": lesion, "sc": cord}
        time.sleep(0.5)  # let the network's thread pools go idle: they spin for a while after a prediction
        t0 = time.perf_counter()
        for _ in range(5):
            analysis = analyze_masks(masks, SCISEG.labels)
        t_an = (time.perf_counter() - t0) / 5
        t0 = time.perf_counter()
        seg.segment(img)
        t_seg = time.perf_counter() - t0
        out.append({"input": name, "segmentation_s": t_seg, "analysis_s": t_an,
                    "lesions": analysis.lesion_count, "ratio": t_an / t_seg})
    return out


def cell(v) -> str:
    """A value as a table cell: 6 significant digits, a dash for none."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def report(cases, sct, mine, cost) -> str:
    lines = ["# Lesion analysis: side by side with SCT 7.3 `sct_analyze_lesion`", "",
             "Generated by `python benchmarks/compare_analyze_lesion.py` (SCT 7.3 environment built by "
             "`scripts/build_sct_env.sh`). Criteria: volume exact (relative 1e-9); lengths, widths and bridges "
             "within max(0.1 mm, 2 %); damage ratio within 0.01; midsagittal slice within 0.05.", ""]
    first = cases[0]["name"]
    if first in sct and "rows" in sct[first]:
        lines += [f"## {first}", "", "| column | SCT 7.3 | sct_task_sciseg | abs diff |", "|---|---|---|---|"]
        for label, col, sval, val, diff, ok in compare(sct[first]["rows"], mine[first][0]):
            lines.append(f"| {col} | {cell(sval)} | {cell(val)} | {diff:.2g}{'' if ok else ' **FAIL**'} |")
        lines.append("")
    lines += ["## Every case", "", "| case | lesions | SCT cells | within criteria | max abs diff | SCT wall s | "
              "ours s (files) | ours ms (analysis) |", "|---|---|---|---|---|---|---|---|"]
    worst_all, n_cells, n_ok = 0.0, 0, 0
    for c in cases:
        s, (rows, t_io, t_an) = sct.get(c["name"], {}), mine[c["name"]]
        if "rows" not in s:
            lines.append(f"| {c['name']} | {len([r for r in rows if r['label']])} | SCT failed: "
                         f"`{s.get('error', '?')}` | | | {s.get('seconds', 0):.2f} | {t_io:.3f} | {t_an * 1e3:.1f} |")
            continue
        cells = compare(s["rows"], rows)
        worst = max((d for *_, d, _ok in cells), default=0.0)
        ok = sum(1 for *_, good in cells if good)
        worst_all, n_cells, n_ok = max(worst_all, worst), n_cells + len(cells), n_ok + ok
        lines.append(f"| {c['name']} | {len(s['rows'])} | {len(cells)} | {ok} | {worst:.2g} | {s['seconds']:.2f} | "
                     f"{t_io:.3f} | {t_an * 1e3:.1f} |")
    lines += ["", f"All cases: {n_ok} of {n_cells} SCT cells within the criteria; largest abs diff {worst_all:.2g}.",
              "", "SCT wall: one `python -m spinalcordtoolbox.scripts.sct_analyze_lesion` process per case, two at a "
              "time, on a 2-core machine shared with other work (one case alone: about 2.7 s). Ours: the same "
              "files in this process (the first call also imports scipy.interpolate); analysis: the arrays in "
              "memory.", ""]
    if cost:
        lines += ["## Analysis time against segmentation time (same process, embedded model, default settings)",
                  "", "| input | lesions | segmentation s | analysis ms | ratio |", "|---|---|---|---|---|"]
        for r in cost:
            lines.append(f"| {r['input']} | {r['lesions']} | {r['segmentation_s']:.2f} | "
                         f"{r['analysis_s'] * 1e3:.1f} | {r['ratio'] * 100:.2f} % |")
        lines += ["", "The embedded phantom-trained model is far smaller than SCIsegV2 (whose segmentation takes "
                  "15–200 s on these inputs, see `benchmarks/results.md`), so these ratios are upper bounds.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sct-python", type=Path, default=SCT_PYTHON)
    p.add_argument("--random", type=int, default=20, help="number of seeded random phantoms")
    p.add_argument("--workers", type=int, default=2, help="SCT cases run at a time")
    p.add_argument("--no-segmentation", action="store_true", help="skip the analysis/segmentation time ratio")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "analyze_lesion.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sciseg-analyze-") as tmp:
        cases = build_cases(Path(tmp), args.random)
        sct = run_sct(cases, args.sct_python, args.workers) if args.sct_python.is_file() else {}
        mine = {c["name"]: run_ours(c) for c in cases}
        cost = [] if args.no_segmentation else segmentation_cost(Path(tmp))
    text = report(cases, sct, mine, cost)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    marker = "<!-- options: benchmarks/compare_analyze_lesion_options.py -->"  # that script's part is kept
    old = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(text + ("\n" + marker + old.split(marker, 1)[1] if marker in old else ""))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
