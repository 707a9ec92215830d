"""How far each mode's masks are from the exact mode (``-precision fp32``, nnU-Net's own PyTorch path), with the
trained phantom model, on the shared volumes, the benchmark's neck volumes and synthetic phantoms.

    python benchmarks/precision_agreement.py [--out benchmarks/results/precision_agreement.md]

Counts are voxels whose cord (label ≥ 1) or lesion (label 2) membership differs from the exact mode, and the
cord count as a percentage of the exact cord's voxels (the default's bound is 0.02 %).
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

MODES: Dict[str, dict] = {
    "exact (-precision fp32)": {"precision": "fp32"},
    "default": {},
    "PyTorch fp32, channels-last (-backend torch)": {"backend": "torch"},
    "bf16 (-precision bf16)": {"precision": "bf16"},
    "-fast": {"fast": True},
}


def inputs(work: Path) -> Dict[str, Path]:
    from make_data import make_neck
    from sct_task_sciseg.demo.phantom import make_phantom

    out = {name: DATA / rel for name, rel in (("t2_fake_lesion", "t2/t2_fake_lesion.nii.gz"), ("t2", "t2/t2.nii.gz"),
                                              ("t1w", "t1/t1w.nii.gz"), ("t2s", "t2s/t2s.nii.gz"))}
    for kind in ("sagittal", "axial"):
        out[f"neck {kind}"] = make_neck(work / f"neck_{kind}.nii.gz", kind)
    for seed in range(4):
        img, _ = make_phantom(seed)
        path = work / f"phantom_{seed}.nii.gz"
        nib.save(img, str(path))
        out[f"phantom seed {seed}"] = path
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "precision_agreement.md"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from sct_task_sciseg.inference.settings import cpu_flags, native_bf16
    from sct_task_sciseg.pipeline import Segmenter
    from sct_task_sciseg.tasks import SCISEG

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    modes = {k: v for k, v in MODES.items() if native_bf16() or "bf16" not in k}
    segmenters = {name: Segmenter(SCISEG, SCISEG.demo_release.tag, threads=args.threads, quiet=True, **opts)
                  for name, opts in modes.items()}
    rows: List[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in inputs(Path(tmp)).items():
            exact = segmenters["exact (-precision fp32)"].segment(path).labels
            cord, lesion = exact > 0, exact == 2
            row = {"input": label, "shape": list(exact.shape), "cord": int(cord.sum()), "lesion": int(lesion.sum())}
            for name, seg in segmenters.items():
                if name.startswith("exact"):
                    continue
                labels = seg.segment(path).labels
                d_cord = int(((labels > 0) != cord).sum())
                d_lesion = int(((labels == 2) != lesion).sum())
                row[name] = {"cord": d_cord, "lesion": d_lesion, "pct": 100.0 * d_cord / max(1, int(cord.sum())),
                             "resolved": seg.resolved.as_dict()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    names = [n for n in modes if not n.startswith("exact")]
    lines = [f"# Mask agreement with the exact mode (phantom-trained model)", "",
             f"CPU: {cpu}; native bf16: {native_bf16()}; avx512f: {'avx512f' in cpu_flags()}; "
             f"threads {args.threads}. Cells: differing cord voxels (% of the exact cord) / differing lesion voxels.",
             "", "| input | shape | cord voxels | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        cells = [f"{r[n]['cord']} ({r[n]['pct']:.3f} %) / {r[n]['lesion']}" for n in names]
        lines.append(f"| {r['input']} | {'×'.join(map(str, r['shape']))} | {r['cord']} | " + " | ".join(cells) + " |")
    worst = {n: max(r[n]["pct"] for r in rows) for n in names}
    lines += ["", "Worst cord disagreement per mode: " + "; ".join(f"{n} {w:.3f} %" for n, w in worst.items()), ""]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
