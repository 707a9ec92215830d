"""How far each mode's masks are from the exact mode (``-precision fp32``, nnU-Net's own PyTorch path), with the
trained phantom model, on the shared volumes, the benchmark's neck volumes and synthetic phantoms, at each of
the thread counts given (torch and the engines both set to it).

    python benchmarks/precision_agreement.py [--threads 1 2] [--modes default fast] [--labels DIR]
                                             [--out benchmarks/results/precision_agreement.md]

Cells: differing cord voxels (label ≥ 1) / differing lesion voxels (label 2), and cord Dice. The last table says,
per mode, whether its masks are the same voxels at every thread count given.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
DATA = REPO.parent / "shared" / "data" / "sct_testing_data"
EXACT = "exact (-precision fp32)"
MIN_LESION = 50  # lesion Dice is reported where the exact lesion has at least this many voxels

MODES: Dict[str, dict] = {
    EXACT: {"precision": "fp32"},
    "default": {},
    "-fast": {"fast": True},
    "-fast -precision bf16": {"fast": True, "precision": "bf16"},
    "-fast -crop tiles": {"fast": True, "crop": "tiles"},
    "-fast -crop body": {"fast": True, "crop": "body"},
    "-fast -tiles large": {"fast": True, "tiles": "large"},
}


def inputs(work: Path) -> Dict[str, Path]:
    from make_data import make_neck
    from sct_task_sciseg.demo.phantom import make_phantom

    out = {name: DATA / rel for name, rel in (("t2_fake_lesion", "t2/t2_fake_lesion.nii.gz"), ("t2", "t2/t2.nii.gz"),
                                              ("t1w", "t1/t1w.nii.gz"), ("t2s", "t2s/t2s.nii.gz"),
                                              ("mt1", "mt/mt1.nii.gz"))}
    for seed in range(4):
        img, _ = make_phantom(seed)
        path = work / f"phantom_{seed}.nii.gz"
        nib.save(img, str(path))
        out[f"phantom seed {seed}"] = path
    for kind in ("sagittal", "axial"):
        out[f"neck {kind}"] = make_neck(work / f"neck_{kind}.nii.gz", kind)
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "precision_agreement.md"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--modes", nargs="+", default=[m.lstrip("-") for m in MODES],
                    help="modes to compare with exact, without their leading dash (default: all)")
    ap.add_argument("--labels", help="also save every label map here (labels_<threads>.npz)")
    args = ap.parse_args()
    import torch
    from sct_task_sciseg.inference.settings import cpu_flags, native_bf16
    from sct_task_sciseg.pipeline import Segmenter
    from sct_task_sciseg.tasks import SCISEG

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    modes = {k: v for k, v in MODES.items()
             if (native_bf16() or "bf16" not in k) and (k == EXACT or k.lstrip("-") in args.modes)}
    names = [n for n in modes if n != EXACT]
    labels: Dict[tuple, np.ndarray] = {}
    rows: Dict[int, List[dict]] = {t: [] for t in args.threads}
    resolved: Dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = inputs(Path(tmp))
        for threads in args.threads:
            torch.set_num_threads(threads)
            segs = {n: Segmenter(SCISEG, SCISEG.demo_release.tag, threads=threads, quiet=True, **o)
                    for n, o in modes.items()}
            for label, path in paths.items():
                for name, seg in segs.items():
                    labels[(threads, label, name)] = seg.segment(path).labels
                    resolved[name] = seg.resolved.as_dict()
                exact = labels[(threads, label, EXACT)]
                cord, lesion = exact > 0, exact == 2
                row = {"input": label, "shape": list(exact.shape), "cord": int(cord.sum()), "lesion": int(lesion.sum())}
                for name in names:
                    got = labels[(threads, label, name)]
                    row[name] = {"cord": int(((got > 0) != cord).sum()), "lesion": int(((got == 2) != lesion).sum()),
                                 "dice": dice(got > 0, cord),
                                 "lesion_dice": dice(got == 2, lesion) if lesion.sum() >= MIN_LESION else None}
                rows[threads].append(row)
                print(json.dumps({"threads": threads, **row}), flush=True)
            if args.labels:
                Path(args.labels).mkdir(parents=True, exist_ok=True)
                np.savez_compressed(Path(args.labels) / f"labels_{threads}.npz", **{
                    f"{label}|{name}": labels[(threads, label, name)] for label in paths for name in modes})
    lines = ["# Mask agreement with the exact mode (phantom-trained model)", "",
             f"CPU: {cpu}; native bf16: {native_bf16()}; avx512f: {'avx512f' in cpu_flags()}. Cells: differing "
             "cord voxels / differing lesion voxels, cord Dice (lesion Dice where the exact lesion has ≥ "
             f"{MIN_LESION} voxels). Torch and the engines run at the thread count of each table.", "",
             "Modes as resolved: " + "; ".join(f"{n}: {r['backend']} {r['precision']} crop {r['crop']} tiles "
                                               f"{r['tiles']}" for n, r in resolved.items()), ""]
    for threads, trows in rows.items():
        lines += [f"## {threads} thread{'s' if threads > 1 else ''}", "",
                  "| input | shape | exact cord / lesion voxels | " + " | ".join(names) + " |",
                  "|---|---|---|" + "---|" * len(names)]
        for r in trows:
            cells = [f"{r[n]['cord']} / {r[n]['lesion']}, {r[n]['dice']:.4f}"
                     + (f" ({r[n]['lesion_dice']:.3f})" if r[n]["lesion_dice"] is not None else "") for n in names]
            lines.append(f"| {r['input']} | {'×'.join(map(str, r['shape']))} | {r['cord']} / {r['lesion']} | "
                         + " | ".join(cells) + " |")
        worst = {n: min(r[n]["dice"] for r in trows) for n in names}
        worst_lesion = {n: min([r[n]["lesion_dice"] for r in trows if r[n]["lesion_dice"] is not None] or [1.0])
                        for n in names}
        lines += ["", "Worst cord Dice (lesion Dice): " + "; ".join(
            f"{n} {w:.4f} ({worst_lesion[n]:.3f})" for n, w in worst.items()), ""]
    if len(args.threads) > 1:
        lines += [f"## Same voxels at {', '.join(map(str, args.threads))} threads", "",
                  "| mode | inputs whose masks differ between thread counts | voxels differing (worst input) |",
                  "|---|---|---|"]
        for name in modes:
            diffs = {label: max(int((labels[(t, label, name)] != labels[(args.threads[0], label, name)]).sum())
                                for t in args.threads) for label in paths}
            bad = [label for label, d in diffs.items() if d]
            lines.append(f"| {name} | {len(bad)} of {len(diffs)}{': ' + ', '.join(bad) if bad else ''} | "
                         f"{max(diffs.values())} |")
        lines.append("")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
