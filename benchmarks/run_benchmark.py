"""sciseg vs sct_deepseg vs nnU-Net's own pipeline, on the same SCIsegV2-shaped model, in one run.

    python benchmarks/run_benchmark.py [--sct-python /path/to/sct/python] [--work DIR] [--out benchmarks/]

Every timed run is a fresh process (start-up, imports, model load, reading and writing included, as a user
pays them); its peak memory is the sum of the resident set sizes of the whole process tree, sampled every
50 ms. Agreement (Dice of every mode's masks against nnU-Net's fp32 output) is measured on a trained model,
the package's embedded phantom-trained release (or --trained-model). Writes results.json and results.md.
See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
from make_data import copies, make_neck, make_sciseg_v2_shaped  # noqa: E402

T2_FAKE_LESION = REPO.parent / "shared" / "data" / "sct_testing_data" / "t2" / "t2_fake_lesion.nii.gz"
SCT_MODEL_KEY = "model_seg_sci_multiclass_sc_lesion_nnunet"
TASK = "seg_sc_lesion_t2w_sci"

# name → (sciseg flags, what it tests)
MODES: Dict[str, tuple] = {
    "exact": (["-precision", "fp32"], "nnU-Net's fp32 PyTorch path (voxel-identical to SCT)"),
    "default": ([], "defaults: nnU-Net's fp32 PyTorch path (exact mode), every tile"),
    "fast": (["-fast"], "-fast: OpenVINO (fp32; bf16 on native-bf16 CPUs), every tile"),
}
LEVERS: Dict[str, tuple] = {
    "onnxruntime": (["-backend", "onnxruntime", "-precision", "fp32"], "ONNX Runtime fp32 engine"),
    "crop-body": (["-crop", "body"], "default + crop to the body's bounding box"),
    "step-1.0": (["-tile-step-size", "1.0"], "default + tile step 1.0"),
    "large-tiles": (["-tiles", "large"], "default + large tiles"),
}
# Python-API keyword arguments of the same modes (Dice on the trained model)
API = {
    "exact": dict(precision="fp32", crop="none"),
    "default": dict(),
    "fast": dict(fast=True),
    "onnxruntime": dict(backend="onnxruntime", precision="fp32", crop="none"),
    "crop-tiles": dict(crop="tiles"),
    "crop-body": dict(crop="body"),
    "step-1.0": dict(tile_step_size=1.0),
    "large-tiles": dict(tiles="large"),
    "bf16": dict(precision="bf16", backend="torch", crop="none"),
}


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


def measure(cmd: List[str], env: Optional[dict] = None, timeout: float = 3600) -> dict:
    """Wall time, peak RSS of the process tree (sum, sampled every 50 ms), exit code and output."""
    t0 = time.perf_counter()
    proc = psutil.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        env=dict(os.environ, **(env or {})))
    chunks: List[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(proc.stdout), daemon=True)
    reader.start()
    peak = peak_single = 0
    n_procs = 1
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
        except psutil.Error:
            procs = [proc]
        total = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            peak_single = max(peak_single, rss)
        peak = max(peak, total)
        n_procs = max(n_procs, len(procs))
        if time.perf_counter() - t0 > timeout:
            for p in procs:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            break
        time.sleep(0.05)
    proc.wait()
    wall = time.perf_counter() - t0
    reader.join(timeout=5)
    out = "".join(chunks)
    return {"wall_s": round(wall, 2), "peak_rss_gb": round(peak / 1e9, 3),
            "peak_rss_single_gb": round(peak_single / 1e9, 3), "processes": n_procs, "rc": proc.returncode,
            "output_tail": out[-3000:], "_output": out}


def load_avg() -> float:
    return os.getloadavg()[0]


def wait_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to max_wait s) until the 1-minute load is below ``limit``; returns the load seen."""
    t0 = time.time()
    while load_avg() > limit and time.time() - t0 < max_wait:
        time.sleep(15)
    return load_avg()


def sciseg_stats(output: str) -> dict:
    """Sum of the per-input 'stats:' lines printed by `sciseg -v 2`."""
    total: dict = {"tiles": 0, "tiles_skipped": 0, "network_seconds": 0.0, "inputs": 0}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("stats: "):
            st = json.loads(line[len("stats: "):])
            total["inputs"] += 1
            for k in ("tiles", "tiles_skipped", "network_seconds", "compile_seconds", "preprocess_seconds", "resample_back_seconds", "predict_seconds",
                      "load_model_seconds"):
                if k in st:
                    total[k] = total.get(k, 0) + st[k]
            total["tile_size"] = st.get("tile_size")
            total["model_shape"] = st.get("model_shape")
            total["roi_shape"] = st.get("roi_shape")
    return total


class Bench:
    def __init__(self, args):
        self.a = args
        self.work = Path(args.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.py = sys.executable
        self.sciseg = str(Path(sys.executable).with_name("sciseg"))
        self.env = {"SCISEG_MODELS_DIR": str(self.work / "models"), "SCISEG_CACHE_DIR": str(self.work / "cache"),
                    "PYTHONWARNINGS": "ignore"}
        self.results: dict = {"runs": [], "tiles": [], "dice": [], "notes": [], "machine": self.machine()}

    # -- set-up ------------------------------------------------------------------------------------------
    @staticmethod
    def machine() -> dict:
        from sct_task_sciseg.inference.settings import cpu_flags, native_bf16
        model = ""
        try:
            model = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
        except (OSError, StopIteration):
            pass
        flags = cpu_flags()
        import torch
        from importlib.metadata import version
        vers = {}
        for pkg in ("nnunetv2", "torch", "openvino", "onnxruntime", "numpy"):
            try:
                vers[pkg] = version(pkg)
            except Exception:  # noqa: BLE001
                vers[pkg] = None
        return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
                "avx512f": "avx512f" in flags, "native_bf16": native_bf16(),
                "torch_cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
                "python": platform.python_version(), "versions": vers,
                "date": dt.datetime.now().isoformat(timespec="seconds")}

    def prepare(self):
        log("building the SCIsegV2-shaped model folder and inputs")
        self.model_root = self.work / "model"
        self.model = make_sciseg_v2_shaped(self.model_root)
        self.inputs = {
            "sagittal": make_neck(self.work / "inputs" / "sagittal.nii.gz", "sagittal"),
            "axial": make_neck(self.work / "inputs" / "axial.nii.gz", "axial"),
            "t2_fake_lesion": self.work / "inputs" / "t2_fake_lesion.nii.gz",
        }
        if not self.inputs["t2_fake_lesion"].is_file():
            shutil.copy(T2_FAKE_LESION, self.inputs["t2_fake_lesion"])
        self.bids = self.work / "bids20"
        copies(self.inputs["t2_fake_lesion"], self.bids, self.a.batch_n)
        if not (self.work / "models" / TASK).is_dir():
            r = measure([self.sciseg, "-install-task", TASK, "-custom-url", self.model_root], self.env)
            if r["rc"]:
                raise SystemExit(f"install failed:\n{r['output_tail']}")
        self.sct_models = self.work / "sct_deepseg_models"
        dst = self.sct_models / SCT_MODEL_KEY
        if not (dst / self.model.name).is_dir():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.model, dst / self.model.name)
            (dst / "source.json").write_text(json.dumps({"model_name": SCT_MODEL_KEY, "model_urls": ["benchmark"],
                                                         "custom": True}))
        self.sct_ok = False
        if self.a.sct_python:
            r = measure([self.a.sct_python, "-c", "import spinalcordtoolbox, nnunetv2; "
                         "from importlib.metadata import version; print(version('spinalcordtoolbox'), "
                         "version('nnunetv2'), version('torch'))"])
            self.sct_ok = r["rc"] == 0
            self.results["sct"] = {"python": self.a.sct_python, "versions": r["_output"].strip().splitlines()[-1:],
                                   "usable": self.sct_ok}
            if not self.sct_ok:
                self.results["notes"].append(f"SCT at {self.a.sct_python} is not usable: {r['output_tail'][-300:]}")

    # -- runs ----------------------------------------------------------------------------------------------
    def record(self, input_name: str, run: str, r: dict, **extra) -> dict:
        row = {"input": input_name, "run": run, **{k: v for k, v in r.items() if not k.startswith("_")}, **extra}
        if r.get("rc"):
            log(f"  FAILED rc={r['rc']}: {r['output_tail'][-800:]}")
        self.results["runs"].append(row)
        log(f"  {input_name:<15} {run:<28} {r['wall_s']:8.1f} s  {r['peak_rss_gb']:.2f} GB  load {load_avg():.1f}")
        self.save()
        return row

    def kept(self, name: str, run: str) -> bool:
        """With --resume: a successful row for this input and run is kept, not measured again."""
        if self.a.resume and any(r.get("input") == name and r.get("run") == run and "wall_s" in r and not r.get("rc")
                                 for r in self.results["runs"]):
            log(f"  {name:<15} {run:<28} kept from the earlier run")
            return True
        return False

    def run_sct(self, name: str, path: Path, tag: str = "sct") -> None:
        if self.kept(name, tag):
            return
        if not self.sct_ok:
            self.results["runs"].append({"input": name, "run": tag, "status": "not run (no SCT environment)"})
            return
        out = self.work / "out" / tag / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        r = measure([self.a.sct_python, HERE / "sct_deepseg_run.py", self.sct_models, "-i", path, "-task", TASK,
                     "-o", out / "seg.nii.gz"], {"PYTHONWARNINGS": "ignore"})
        m = re.search(r"Total inference time: (\d+) minute\(s\) (\d+) seconds", r["_output"])
        self.record(name, tag, r, sct_inference_s=int(m.group(1)) * 60 + int(m.group(2)) if m else None)

    def run_stock(self, name: str, paths: List[Path], tag: str = "stock nnU-Net") -> None:
        if self.kept(name, tag):
            return
        out = self.work / "out" / "stock" / name
        shutil.rmtree(out, ignore_errors=True)
        r = measure([self.py, HERE / "stock_nnunet.py", self.model, out, *paths])
        m = re.search(r"STOCK_TIMINGS (\{.*\})", r["_output"])
        self.record(name, tag, r, phases=json.loads(m.group(1)) if m else None)

    def run_sciseg(self, name: str, paths: List[Path], mode: str, flags: List[str], env: Optional[dict] = None,
                   out_name: Optional[str] = None) -> dict:
        out = self.work / "out" / (out_name or mode) / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        if self.kept(name, f"sciseg {mode}"):
            return {}
        r = measure([self.sciseg, "-i", *map(str, paths), "-o", f"{out}/", "-v", "2", "-overwrite", *flags],
                    dict(self.env, **(env or {})))
        r_stats = sciseg_stats(r["_output"])
        return self.record(name, f"sciseg {mode}", r, flags=" ".join(flags), **r_stats)

    # -- the benchmark -----------------------------------------------------------------------------------
    def tile_speeds(self) -> None:
        log("one-tile forward pass per engine (128×192×96)")
        engines = ["torch", "torch-channels-last", "onnxruntime", "openvino"]
        if self.a.with_compile:
            engines.append("torch-compile")
        for eng in engines:
            r = measure([self.py, HERE / "tile_speed.py", self.model, eng], self.env)
            m = re.search(r"TILE (\{.*\})", r["_output"])
            row = json.loads(m.group(1)) if m else {"engine": eng, "error": r["output_tail"][-500:]}
            self.results["tiles"].append(row)
            log(f"  {eng:<22} {row.get('seconds', float('nan')):.2f} s/tile")
        # bf16/fp32 ratio on a smaller tile: emulated bf16 is very slow on CPUs without native bf16
        for eng in ("torch", "torch-bf16", "openvino"):
            limit = 240 if eng == "torch-bf16" and not self.results["machine"]["native_bf16"] else 3600
            r = measure([self.py, HERE / "tile_speed.py", self.model, eng, "--shape", "64", "96", "48",
                         "--repeat", "1"], self.env, timeout=limit)
            m = re.search(r"TILE (\{.*\})", r["_output"])
            row = json.loads(m.group(1)) if m else {"engine": eng, "shape": [64, 96, 48], "error": (
                f"no result within {limit} s (bf16 emulated: no native bf16 on this CPU)" if r["wall_s"] >= limit
                else r["output_tail"][-500:])}
            self.results["tiles"].append(row)
            log(f"  {eng:<22} {row.get('seconds', float('nan')):.2f} s/tile (64×96×48)")
        self.save()

    def warm_up(self) -> None:
        log("first runs: one-time network export (OpenVINO IR, ONNX) into the cache")
        engines = [("fast", MODES["fast"][0])]
        if "sagittal-levers" not in self.a.skip:
            engines.append(("onnxruntime", LEVERS["onnxruntime"][0]))
        for mode, flags in engines:
            self.run_sciseg("t2_fake_lesion", [self.inputs["t2_fake_lesion"]], f"{mode} first run (export)",
                            flags, out_name="warm")

    def end_to_end(self, name: str, levers: bool = False, stock: bool = True, exact: bool = True) -> None:
        path = self.inputs[name]
        log(f"{name}: end-to-end runs")
        if not levers:
            self.run_sct(name, path)
            if stock and not self.a.skip_stock:
                self.run_stock(name, [path])
            for mode, (flags, _) in MODES.items():
                if mode == "exact" and not exact:
                    continue
                self.run_sciseg(name, [path], mode, flags)
            return
        for lever, (flags, _) in LEVERS.items():
            self.run_sciseg(name, [path], lever, flags)

    def batch(self) -> None:
        n = self.a.batch_n
        log(f"batch: {n} scans of t2_fake_lesion size")
        scans = sorted(self.bids.glob("sub-*/anat/*_T2w.nii.gz"))
        self.run_sciseg(f"batch{n}", [self.bids], "batch", [], out_name="batch")
        self.run_sciseg(f"batch{n}", [self.bids], "batch -fast", ["-fast"], out_name="batch-fast")
        if self.a.with_stock_batch:
            self.run_stock(f"batch{n}", scans, tag="stock nnU-Net (one call)")
        for i in range(self.a.sct_calls):
            self.run_sct(f"batch{n}", scans[i], tag=f"sct single call {i + 1}")
        for i in range(2):
            self.run_sciseg(f"batch{n}", [scans[i]], f"single call {i + 1}", [], out_name=f"single{i}")

    def dice(self) -> None:
        """Every mode's masks against the fp32 reference, on a trained model, in this process."""
        import numpy as np
        from sct_task_sciseg.demo.phantom import dice as dice_fn
        from sct_task_sciseg.pipeline import Segmenter
        from sct_task_sciseg.tasks import SCISEG
        from sct_task_sciseg.weights import install

        from scipy import ndimage

        def largest(mask):
            lab, n = ndimage.label(mask, np.ones((3, 3, 3)))
            return mask if n <= 1 else lab == (np.argmax(np.bincount(lab.ravel())[1:]) + 1)

        os.environ.update(self.env)
        src = self.a.trained_model or str(SCISEG.demo_release.embedded_path())
        model = install(SCISEG, "trained-for-benchmark", models_dir=self.work / "trained_models", source=src,
                        force=True, quiet=True)
        self.results["trained_model"] = {"source": src, "sha256": model.sha256}
        log(f"Dice on the trained model {src}")
        refs: dict = {}
        defaults: dict = {}
        from sct_task_sciseg.inference.settings import module_available
        for mode, kw in API.items():
            if kw.get("backend") and not module_available(kw["backend"]):
                log(f"  {mode:<12} skipped: {kw['backend']} is not installed")
                continue
            names = ["t2_fake_lesion"] if mode == "bf16" and not self.results["machine"]["native_bf16"] \
                else list(self.inputs)
            seg = Segmenter(model_folder=model.model_folder, quiet=True, **kw)
            for name in names:
                t0 = time.perf_counter()
                res = seg.segment(self.inputs[name])
                wall = time.perf_counter() - t0
                sc, les = res.labels > 0, res.labels == 2
                if mode == "exact":
                    refs[name] = (sc, les)
                row = {"mode": mode, "input": name, "sc_voxels": int(sc.sum()), "lesion_voxels": int(les.sum()),
                       "dice_sc": round(dice_fn(sc, refs[name][0]), 5),
                       "dice_sc_largest": round(dice_fn(largest(sc), largest(refs[name][0])), 5),
                       "dice_lesion": round(dice_fn(les, refs[name][1]), 5),
                       "voxels_differing": int(np.count_nonzero(res.labels != np.where(
                           refs[name][1], 2, refs[name][0].astype(np.uint8)))),
                       "tiles": res.stats.get("tiles"), "tiles_skipped": res.stats.get("tiles_skipped"),
                       "seconds": round(wall, 2), "resolved": seg.resolved.as_dict()}
                self.results["dice"].append(row)
                if mode == "default":
                    defaults[name] = (sc, les)
                if mode == "fast" and name in defaults:
                    self.results["dice"].append({
                        "mode": "fast-vs-default", "input": name, "dice_sc": round(dice_fn(sc, defaults[name][0]), 5),
                        "dice_sc_largest": round(dice_fn(largest(sc), largest(defaults[name][0])), 5),
                        "dice_lesion": round(dice_fn(les, defaults[name][1]), 5), "voxels_differing": None})
                log(f"  {mode:<12} {name:<15} Dice cord {row['dice_sc']:.5f} ({row['dice_sc_largest']:.5f}) "
                    f"lesion {row['dice_lesion']:.4f} "
                    f"({row['voxels_differing']} voxels differ)")
            self.save()

    # -- output ------------------------------------------------------------------------------------------
    def save(self) -> None:
        out = Path(self.a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(self.results, indent=1, default=str) + "\n")

    def finish(self, quiet: bool = False) -> None:
        from report import render
        md = render(self.results)
        (Path(self.a.out) / "results.md").write_text(md)
        self.save()
        if not quiet:
            print(md)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sct-python", help="python of an SCT 6.x environment (runs sct_deepseg as the baseline)")
    ap.add_argument("--work", default="/tmp/sciseg_benchmark", help="scratch folder (model, inputs, outputs)")
    ap.add_argument("--out", default=str(HERE), help="where results.json and results.md go")
    ap.add_argument("--trained-model", help="zip or folder of a trained model for the Dice columns "
                    "(default: the package's embedded phantom-trained release)")
    ap.add_argument("--batch-n", type=int, default=20)
    ap.add_argument("--sct-calls", type=int, default=3, help="separate SCT calls timed for the batch comparison")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["tiles", "warm", "sagittal", "sagittal-levers", "t2_fake_lesion", "batch", "dice", "axial"])
    ap.add_argument("--with-stock-batch", action="store_true", help="also time nnU-Net on the whole batch")
    ap.add_argument("--skip-stock", action="store_true")
    ap.add_argument("--with-compile", action="store_true", help="also time torch.compile (slow to compile)")
    ap.add_argument("--max-load", type=float, default=1.5, help="wait for a 1-minute load below this first")
    ap.add_argument("--max-wait", type=float, default=900)
    ap.add_argument("--resume", action="store_true", help="keep runs already in results.json (other sections)")
    ap.add_argument("--keep-tiles", action="store_true",
                    help="with --skip tiles: keep the tile table of the earlier results.json, measure all else anew")
    a = ap.parse_args(argv)
    b = Bench(a)
    earlier = Path(a.out) / "results.json"
    old = json.loads(earlier.read_text()) if (a.keep_tiles or a.resume) and earlier.is_file() else None
    if a.keep_tiles and old is not None:
        b.results["tiles"] = old.get("tiles", [])
        b.results["tiles_from"] = old.get("tiles_from") or old.get("machine", {}).get("date")
    if a.resume and old is not None:
        for key in ("runs", "tiles", "dice", "notes"):
            b.results[key] = old.get(key, [])
        b.results["runs"] = [r for r in b.results["runs"] if "wall_s" in r and not r.get("rc")]
        b.results.update({k: v for k, v in old.items() if k not in b.results})
    b.prepare()
    seen = wait_quiet(a.max_load, a.max_wait)
    b.results["load_at_start"] = seen
    log(f"1-minute load {seen:.2f}")
    keep = set(a.skip)
    if not a.resume:
        b.results["runs"], b.results["dice"] = [], []
    if "tiles" not in keep:
        b.results["tiles"], b.results["tiles_from"] = [], None
        b.tile_speeds()
    plan = [("warm", None), ("sagittal", {}), ("t2_fake_lesion", {}), ("batch", None), ("dice", None),
            ("sagittal-levers", {"levers": True}), ("axial", {"stock": False, "exact": False})]
    for step, kw in plan:
        if step in keep:
            continue
        if step == "warm":
            b.warm_up()
        elif step == "batch":
            b.batch()
        elif step == "dice":
            b.dice()
        else:
            b.end_to_end(step.split("-")[0], **kw)
        b.finish(quiet=True)
    b.results["load_at_end"] = load_avg()
    b.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
