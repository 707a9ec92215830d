"""Start-up cost and per-scan overhead of `sciseg -scheduler slurm` on a real SLURM, against the in-process
batch in the same run, and the recovery time after a worker job is cancelled.

    scripts/slurm_ci.sh start            # a one-node SLURM (as root), or any SLURM this machine submits to
    python benchmarks/slurm_overhead.py  # → benchmarks/results/slurm.md and slurm.json

Every run is the real `sciseg` command on N small phantom scans (BIDS layout) with the embedded phantom-trained
model; times are wall-clock from the process start: to the first scan's progress line, and to the end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCISEG = str(Path(sys.executable).with_name("sciseg"))


def make_data(root: Path, n: int) -> Path:
    import nibabel as nib
    from sct_task_sciseg.demo.phantom import make_phantom
    for i in range(1, n + 1):
        anat = root / "bids" / f"sub-{i:02d}" / "anat"
        anat.mkdir(parents=True)
        nib.save(make_phantom(i)[0], str(anat / f"sub-{i:02d}_T2w.nii.gz"))
    return root / "bids"


def install(root: Path) -> str:
    from sct_task_sciseg.tasks import SCISEG as TASK
    from sct_task_sciseg.weights import install as do_install
    models = root / "models"
    do_install(TASK, TASK.default_release.tag, models_dir=models, source=str(TASK.demo_release.embedded_path()),
               quiet=True)
    return str(models)


def timed_run(args, env, cancel_after_first: bool = False) -> dict:
    """Run sciseg; seconds to the first and last progress lines and to the end (and to the line after a
    cancelled job's replacement, with ``cancel_after_first``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([SCISEG, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    marks, cancelled, lines = {}, None, []
    for line in proc.stdout:
        lines.append(line)
        now = time.perf_counter() - t0
        if re.match(r"^\[1/\d+\]", line):
            marks["first_scan_s"] = round(now, 1)
            if cancel_after_first:
                jobs = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True,
                                      text=True).stdout.split()
                subprocess.run(["scancel", *jobs], check=True)
                cancelled = time.perf_counter() - t0
        elif cancelled is not None and re.match(r"^\[\d+/\d+\]", line) and "after_cancel_s" not in marks:
            marks["after_cancel_s"] = round(time.perf_counter() - t0 - cancelled, 1)
    proc.wait(timeout=1800)
    marks["wall_s"] = round(time.perf_counter() - t0, 1)
    if proc.returncode != 0:
        raise SystemExit(f"sciseg {' '.join(args)}: exit {proc.returncode}\n{proc.stderr.read()}")
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="scans (default 20)")
    parser.add_argument("-cores", type=int, default=2, help="cores of the SLURM job and in-process threads")
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sciseg-slurm-bench-"))
    data, models = make_data(root, opts.n), install(root)
    env = dict(os.environ, SCISEG_MODELS_DIR=models)
    c = str(opts.cores)
    rows = {
        "in-process": timed_run(["-i", str(data), "-o", f"{root}/inproc/", "-threads", c], env),
        "slurm": timed_run(["-i", str(data), "-o", f"{root}/slurm/", "-scheduler", "slurm", "-slurm-jobs", "1",
                            "-slurm-cores", c, "-slurm-memory", f"{2 * opts.cores}GB", "-threads", "1"], env),
        "slurm, job cancelled after the first scan": timed_run(
            ["-i", str(data), "-o", f"{root}/cancel/", "-scheduler", "slurm", "-slurm-jobs", "1", "-slurm-cores", c,
             "-slurm-memory", f"{2 * opts.cores}GB", "-threads", "1"], env, cancel_after_first=True),
    }
    base, slurm = rows["in-process"], rows["slurm"]
    summary = {"scans": opts.n, "cores": opts.cores, "cpu": platform.processor() or platform.machine(),
               "runs": rows, "wall_ratio": round(slurm["wall_s"] / base["wall_s"], 2),
               "first_scan_extra_s": round(slurm["first_scan_s"] - base["first_scan_s"], 1),
               "per_scan_overhead_s": round((slurm["wall_s"] - slurm["first_scan_s"]
                                             - (base["wall_s"] - base["first_scan_s"])) / max(1, opts.n - 1), 2)}
    out = HERE / "results"
    (out / "slurm.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"# sciseg on a real one-node SLURM: {opts.n} small phantom scans", "",
             f"`python benchmarks/slurm_overhead.py -n {opts.n} -cores {opts.cores}`; SLURM job: {opts.cores} cores "
             f"({opts.cores} single-threaded workers); in-process: {opts.cores} threads per scan, reader and writer "
             "threads around it. Times from the `sciseg` process start.", "",
             "| run | first scan done (s) | batch wall (s) | recovery after scancel (s) |", "|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['first_scan_s']} | {r['wall_s']} | {r.get('after_cancel_s', '')} |")
    lines += ["", f"- SLURM / in-process wall time: {summary['wall_ratio']}x; the first scan comes "
              f"{summary['first_scan_extra_s']} s later on SLURM (job submission, worker start, TLS, model load "
              f"per worker); per-scan overhead after the first: {summary['per_scan_overhead_s']} s.",
              "- Recovery: seconds from `scancel` of the only job to the next finished scan (the lost job is "
              "seen gone, a new one submitted, its workers load the model)."]
    (out / "slurm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
