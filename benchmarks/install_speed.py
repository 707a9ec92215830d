"""Install time of a SCIseg-sized (≈250 MB) release from a loopback mirror: `sciseg -install-task` vs `curl` + `unzip`.

Both run in the same process tree, against the same HTTP server on 127.0.0.1, from the same zip. The zip holds
a real nnU-Net model folder layout whose checkpoint is padded to the size of SCIsegV2's (weights stored like
torch does: little compression), so the installer does all its work: download, sha256, size and CRC checks,
safe extraction, layout and label validation, per-file hashes, marker, atomic swap.

usage: python benchmarks/install_speed.py [--size-mb 250] [--repeat 3] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from release_server import ReleaseServer  # noqa: E402

from sct_task_sciseg.tasks import SCISEG  # noqa: E402


def make_release(path: Path, size_mb: int) -> None:
    """A zip like SCIsegV2's: one trainer folder, dataset/plans json, one fold with a ``size_mb`` checkpoint."""
    embedded = SCISEG.demo_release.embedded_path()
    rng = os.urandom
    with zipfile.ZipFile(embedded) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".pth"):
                # random bytes with some structure: deflate saves a little, as on real float weights
                chunk = rng(1 << 20)
                data = data + b"".join(chunk[:900_000] + bytes(148_576) for _ in range(size_mb))
            dst.writestr(info, data)


def timed(cmd, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args()
    if not shutil.which("curl") or not shutil.which("unzip"):
        print("curl and unzip are needed for the baseline", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="sciseg-install-bench-"))
    try:
        rel = SCISEG.default_release
        mirror = work / "mirror" / rel.tag
        mirror.mkdir(parents=True)
        zpath = mirror / rel.asset
        make_release(zpath, args.size_mb)
        size = zpath.stat().st_size
        sciseg = str(Path(sys.executable).with_name("sciseg"))
        rows = {"curl + unzip": [], "sciseg -install-task": [], "sciseg (already installed)": []}
        with ReleaseServer(work / "mirror") as srv:
            url = f"{srv.url}/{rel.tag}/{rel.asset}"
            for i in range(args.repeat):
                d = work / f"curl{i}"
                d.mkdir()
                rows["curl + unzip"].append(timed(
                    ["bash", "-c", f"curl -sSf -o {d}/m.zip {url} && unzip -q {d}/m.zip -d {d}/x"]))
                env = dict(os.environ, SCISEG_RELEASE_URL=srv.url, SCISEG_MODELS_DIR=str(work / f"models{i}"))
                rows["sciseg -install-task"].append(timed([sciseg, "-install-task", SCISEG.name, "-v", "0"], env))
                rows["sciseg (already installed)"].append(
                    timed([sciseg, "-install-task", SCISEG.name, "-v", "0"], env))
                shutil.rmtree(d)
        base = statistics.median(rows["curl + unzip"])
        result = {"zip_bytes": size, "repeat": args.repeat,
                  "median_s": {k: statistics.median(v) for k, v in rows.items()},
                  "runs_s": rows}
        lines = [f"Install of a {size / 1e6:.0f} MB release zip from a loopback mirror "
                 f"(median of {args.repeat}, same run)", "",
                 "| what | median wall (s) | × curl + unzip |", "|---|---|---|"]
        for k, v in result["median_s"].items():
            lines.append(f"| {k} | {v:.2f} | {v / base:.2f} |")
        text = "\n".join(lines)
        print(text)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "install_speed.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "install_speed.md").write_text(text + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
