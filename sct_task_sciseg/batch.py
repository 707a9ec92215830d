"""Batch segmentation: many files, a folder or a BIDS dataset, with the model loaded once.

- Inputs: NIfTI files, folders (their NIfTI files) and BIDS datasets (``sub-*/[ses-*/]anat/*_T2w.nii[.gz]``).
- Outputs go beside each input, or under an output folder mirroring the input tree (``-o derivatives/sciseg/``
  gives ``derivatives/sciseg/sub-01/anat/sub-01_T2w_sc_seg.nii.gz``).
- Reading/validating the next input and writing the previous outputs run in background threads while the
  network predicts (one input ahead, so memory stays bounded).
- Resume: an input whose outputs exist and whose JSON sidecars match the current model, software and parameters
  (and the input's sha256) is skipped; ``overwrite=True`` recomputes everything.
- Failures are isolated: a bad input is reported (one line) and the batch goes on.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .errors import SciSegError
from .nifti import NIFTI_SUFFIXES, check_writable, load_image, output_base, strip_nifti_suffix

BIDS_PATTERNS = ("sub-*/anat/*_T2w.nii*", "sub-*/ses-*/anat/*_T2w.nii*")


@dataclass
class Item:
    """One input and where it came from (the folder it was found in, for mirroring under an output folder)."""

    path: Path
    root: Optional[Path] = None


@dataclass
class Job:
    item: Item
    outputs: Dict[str, Path] = field(default_factory=dict)
    status: str = "pending"  # done | skipped | failed
    reason: str = ""
    seconds: float = 0.0
    counts: Dict[str, int] = field(default_factory=dict)
    stats: Dict[str, object] = field(default_factory=dict)  # tiles, network seconds, phase timings

    @property
    def path(self) -> Path:
        return self.item.path


def is_bids(folder: Path) -> bool:
    return any(p.is_dir() for p in folder.glob("sub-*"))


def _is_nifti(p: Path) -> bool:
    return p.name.endswith(NIFTI_SUFFIXES)


def expand(items: Sequence[str]) -> List[Item]:
    """Files as given; a folder → its NIfTI files; a BIDS dataset → its T2w scans (duplicates removed)."""
    out: List[Item] = []
    seen = set()
    for entry in items:
        p = Path(entry)
        if p.is_dir():
            if is_bids(p):
                found = sorted({q for pattern in BIDS_PATTERNS for q in p.glob(pattern) if _is_nifti(q)})
            else:
                found = sorted(q for q in p.iterdir() if q.is_file() and _is_nifti(q)
                               and not strip_nifti_suffix(q.name).endswith("_seg"))
            new = [Item(q, p) for q in found]
        else:
            new = [Item(p, None)]
        for it in new:
            key = os.path.abspath(it.path)
            if key not in seen:
                seen.add(key)
                out.append(it)
    return out


def output_folder_given(output: Optional[str]) -> bool:
    return bool(output) and (str(output).endswith(("/", os.sep)) or Path(output).is_dir())


def output_base_for(item: Item, output: Optional[str]) -> Path:
    """Base path of an input's outputs: beside it, ``-o X.nii.gz``, or under ``-o DIR/`` mirroring its folder."""
    if output_folder_given(output) and item.root is not None:
        rel = item.path.parent.resolve().relative_to(item.root.resolve()) \
            if item.path.parent.resolve().is_relative_to(item.root.resolve()) else Path()
        return output_base(item.path, str(Path(output) / rel) + os.sep)
    return output_base(item.path, output)


def _sidecar(path: Path) -> Path:
    return Path(str(path)[: -len(".nii.gz")] + ".json")


def up_to_date(segmenter, job: Job) -> bool:
    """True when every output and its sidecar exist and the sidecar says: same input, model and parameters."""
    if not all(p.is_file() and _sidecar(p).is_file() for p in job.outputs.values()):
        return False
    try:
        expected = segmenter.provenance(job.path)
    except OSError:
        return False
    for name, path in job.outputs.items():
        try:
            found = json.loads(_sidecar(path).read_text())
        except (OSError, ValueError):
            return False
        want = dict(expected, Output=name, Labels=list(segmenter.task.output(name).labels),
                    Description=segmenter.task.output(name).description)
        if found != json.loads(json.dumps(want)):
            return False
    return True


class _Progress:
    """One progress bar with ETA on a terminal; plain lines with an ETA otherwise (logs, pipes)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.bar = None
        if enabled and total > 1 and sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="scan", file=sys.stderr, dynamic_ncols=True,
                                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")
            except ImportError:
                self.bar = None

    def eta(self) -> str:
        if self.n == 0 or self.n >= self.total:
            return ""
        left = (time.perf_counter() - self.t0) / self.n * (self.total - self.n)
        return f", ETA {int(left // 60)}:{int(left % 60):02d}"

    def say(self, line: str, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        if self.bar is not None:
            self.bar.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)

    def step(self) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_batch(segmenter, items: Sequence[Item], output: Optional[str] = None, *, overwrite: bool = False,
              verbose: int = 1, on_result: Optional[Callable] = None,
              error: Callable[[str], None] = lambda m: print(f"sciseg: error: {m}", file=sys.stderr)) -> List[Job]:
    """Segment ``items`` with one loaded model; returns one :class:`Job` per input with its status.

    ``on_result(job, result)`` runs in the main thread after each prediction (QC pictures, ...).
    """
    jobs = [Job(it) for it in items]
    progress = _Progress(len(jobs), enabled=verbose > 0)
    todo: List[Job] = []
    for job in jobs:
        try:
            base = output_base_for(job.item, output)
            job.outputs = {o.name: Path(f"{base}{o.suffix}.nii.gz") for o in segmenter.task.outputs}
            folder = next(iter(job.outputs.values())).parent
            if output_folder_given(output):
                folder.mkdir(parents=True, exist_ok=True)
            check_writable(folder)
        except SciSegError as exc:
            _fail(job, str(exc), progress, error)
            continue
        except OSError as exc:
            _fail(job, f"{job.path}: cannot create the output folder ({exc.strerror or exc})", progress, error)
            continue
        if not overwrite and up_to_date(segmenter, job):
            job.status, job.reason = "skipped", "outputs up to date (same input, model and parameters)"
            progress.step()
            if verbose:
                progress.say(f"{job.path}: skipped, {job.reason}")
            continue
        todo.append(job)

    if todo:
        _pipeline(segmenter, todo, progress, verbose, on_result, error)
    progress.close()
    return jobs


def _fail(job: Job, reason: str, progress: _Progress, error) -> None:
    job.status, job.reason = "failed", reason
    progress.step()
    if progress.bar is not None:
        progress.bar.clear()
    error(reason)
    if progress.bar is not None:
        progress.bar.refresh()


_END = object()


def _pipeline(segmenter, todo: List[Job], progress: _Progress, verbose: int, on_result, error) -> None:
    """Reader thread → prediction (main thread) → writer thread."""
    loaded: "queue.Queue" = queue.Queue(maxsize=1)
    written: "queue.Queue" = queue.Queue(maxsize=2)
    stop = threading.Event()

    def reader():
        for job in todo:
            if stop.is_set():
                break
            try:
                item = (job, load_image(job.path), None)
            except SciSegError as exc:
                item = (job, None, str(exc))
            except Exception as exc:  # noqa: BLE001 - isolate any reading failure to its input
                item = (job, None, f"{job.path}: cannot read ({type(exc).__name__}: {exc})")
            while not stop.is_set():
                try:
                    loaded.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
        loaded.put(_END)

    done_lock = threading.Lock()

    def finish(job: Job, t0: float) -> None:
        with done_lock:
            job.seconds = time.perf_counter() - t0
            progress.step()
            if job.status == "failed":
                _fail_report(job, progress, error)
            elif verbose:
                counts = ", ".join(f"{k} {v} voxels" for k, v in job.counts.items())
                outs = ", ".join(str(p) for p in job.outputs.values())
                tag = f"[{progress.n}/{progress.total}] " if progress.total > 1 else ""
                progress.say(f"{tag}{job.path} → {outs} ({counts}; {job.seconds:.1f} s{progress.eta()})")
                if verbose > 1 and job.stats:
                    progress.say("  stats: " + json.dumps(job.stats, sort_keys=True))

    def writer():
        while True:
            item = written.get()
            if item is _END:
                return
            job, result, t0 = item
            try:
                segmenter.write(result, job.outputs, job.path)
                job.status = "done"
            except SciSegError as exc:
                job.status, job.reason = "failed", str(exc)
            except OSError as exc:
                job.status, job.reason = "failed", f"{job.path}: cannot write outputs ({exc})"
            finish(job, t0)

    threads = [threading.Thread(target=reader, name="sciseg-reader", daemon=True),
               threading.Thread(target=writer, name="sciseg-writer", daemon=True)]
    for t in threads:
        t.start()
    try:
        predictor = segmenter.load()  # overlaps with reading the first input
        if len(todo) > 1 and hasattr(predictor.network, "keep_compiled"):
            predictor.network.keep_compiled = True  # speed over memory: no recompiling for every input
        while True:
            item = loaded.get()
            if item is _END:
                break
            job, image, problem = item
            t0 = time.perf_counter()
            if problem is not None:
                job.status, job.reason = "failed", problem
                finish(job, t0)
                continue
            try:
                result = segmenter.segment(image)
                job.counts = {k: int(m.dataobj[...].sum()) for k, m in result.masks.items()}
                job.stats = {**{k: round(float(v), 3) if isinstance(v, float) else v
                                for k, v in result.stats.items()},
                             **{f"{k}_seconds": round(v, 3) for k, v in result.timings.items()}}
                if on_result is not None:
                    on_result(job, result)
            except SciSegError as exc:
                job.status, job.reason = "failed", str(exc)
                finish(job, t0)
                continue
            except Exception as exc:  # noqa: BLE001 - one input's failure must not stop the batch
                job.status, job.reason = "failed", f"{job.path}: segmentation failed ({type(exc).__name__}: {exc})"
                finish(job, t0)
                continue
            written.put((job, result, t0))
            del result, image
    finally:
        stop.set()
        written.put(_END)
        threads[1].join()  # let the current write finish: no partial outputs, even on Ctrl-C


def _fail_report(job: Job, progress: _Progress, error) -> None:
    if progress.bar is not None:
        progress.bar.clear()
    error(job.reason)
    if progress.bar is not None:
        progress.bar.refresh()


def summary(jobs: Sequence[Job], seconds: float) -> str:
    """A table of every input with its status, time and reason, then the totals line."""
    done = [j for j in jobs if j.status == "done"]
    skipped = [j for j in jobs if j.status == "skipped"]
    failed = [j for j in jobs if j.status == "failed"]
    rows = [("status", "input", "seconds", "detail")]
    for j in jobs:
        detail = ", ".join(f"{k} {v}" for k, v in j.counts.items()) if j.status == "done" else j.reason
        rows.append((j.status, str(j.path), f"{j.seconds:.1f}" if j.status == "done" else "", detail))
    widths = [min(max(len(r[i]) for r in rows), 70) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    per = f", {sum(j.seconds for j in done) / len(done):.1f} s per segmented input" if done else ""
    lines.append(f"{len(jobs)} inputs in {seconds:.1f} s{per}")
    lines.append(f"done: {len(done)} segmented, {len(failed)} failed, {len(skipped)} skipped")
    return "\n".join(lines)
