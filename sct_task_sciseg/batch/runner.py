"""Batch segmentation: many inputs with the model loaded once.

- Outputs go beside each input, or under an output folder mirroring the input tree (``-o derivatives/sciseg/``
  gives ``derivatives/sciseg/sub-01/anat/sub-01_T2w_sc_seg.nii.gz``).
- Reading/validating the next input and writing the previous outputs run in background threads while the
  network predicts (one input ahead, so memory stays bounded).
- Resume: an input whose outputs exist and whose JSON sidecars match the current model, software and parameters
  (and the input's sha256) is skipped; ``overwrite=True`` recomputes everything.
- Failures are isolated: a bad input is reported (one line) and the batch goes on.
- ``analyze=True`` adds the lesion analysis of each scan (:mod:`.analysis`); resume then also needs current
  analysis files.
"""
from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from ..errors import SciSegError
from ..io.atomic import check_writable
from ..io.naming import is_output_folder, sidecar_path
from ..io.outputs import ScanOutputs
from ..io.nifti import load_image
from ..pipeline.writer import sidecar_for
from ..stopping import raise_if_requested
from .inputs import Item, item_plan
from .progress import STAGES, Progress, ScanProgress


@dataclass
class Job:
    item: Item
    outputs: Dict[str, Path] = field(default_factory=dict)
    status: str = "pending"  # done | skipped | failed
    reason: str = ""
    seconds: float = 0.0
    counts: Dict[str, int] = field(default_factory=dict)
    stats: Dict[str, object] = field(default_factory=dict)  # tiles, network seconds, phase timings
    analysis: Optional[object] = None  # the LesionAnalysis written with -analyze
    plan: Optional[ScanOutputs] = None  # every file this scan writes (``outputs``: its masks and maps)
    extra: list = field(default_factory=list, repr=False)  # (path, content) written with the masks
    checks: Dict[str, object] = field(default_factory=dict)  # plausibility measures and flags (qc.plausibility)

    @property
    def path(self) -> Path:
        return self.item.path


def _stderr_error(message: str) -> None:
    print(f"sciseg: error: {message}", file=sys.stderr)


def up_to_date(segmenter, job: Job, analyze: bool = False) -> bool:
    """True when every output and its sidecar exist and the sidecar says: same input, model and parameters
    (with ``analyze``: and the analysis files exist and were made from that same segmentation)."""
    if not all(p.is_file() and sidecar_path(p).is_file() for p in job.outputs.values()):
        return False
    try:
        expected = segmenter.provenance(job.path)
    except OSError:
        return False
    for name, path in job.outputs.items():
        try:
            found = json.loads(sidecar_path(path).read_text())
        except (OSError, ValueError):
            return False
        if found != json.loads(json.dumps(sidecar_for(expected, segmenter.task, name))):
            return False
    if analyze:
        from .lesion_jobs import analysis_current
        return job.plan is not None and analysis_current(job.plan, expected)
    return True


def plan(segmenter, jobs: Sequence[Job], output: Optional[str], overwrite: bool, progress: Progress,
         verbose: int, error, analyze: bool = False) -> List[Job]:
    """Give every job its output paths; fail those whose folder is unusable, skip those up to date; returns
    the jobs left to run."""
    todo: List[Job] = []
    for job in jobs:
        try:
            job.plan = item_plan(job.item, output, segmenter.task, segmenter.config.extra_images, analyze=analyze)
            job.outputs = job.plan.images
            folder = job.plan.folder
            if is_output_folder(output):
                folder.mkdir(parents=True, exist_ok=True)
            check_writable(folder)
        except SciSegError as exc:
            _fail(job, str(exc), progress, error)
            continue
        except OSError as exc:
            _fail(job, f"{job.path}: cannot create the output folder ({exc.strerror or exc})", progress, error)
            continue
        if not overwrite and up_to_date(segmenter, job, analyze):
            job.status, job.reason = "skipped", "outputs up to date (same input, model and parameters)"
            progress.step()
            if verbose:
                progress.say(f"{job.path}: skipped, {job.reason}")
            continue
        todo.append(job)
    return todo


def run_batch(segmenter, items: Sequence[Item], output: Optional[str] = None, *, overwrite: bool = False,
              verbose: int = 1, on_result: Optional[Callable] = None,
              error: Callable[[str], None] = _stderr_error, analyze: bool = False, executor=None) -> List[Job]:
    """Segment ``items`` with one loaded model; returns one :class:`Job` per input with its status.

    ``on_result(job, result)`` runs after each scan's files are written (QC pictures, ...): in this process,
    or, with an ``executor`` (:mod:`sct_task_sciseg.batch.executors`; default
    :class:`InProcess`), where the scan ran (it must then be
    picklable; what it sets on the job comes back). With ``analyze`` the lesion analysis runs and is written
    before it (``job.analysis``). Planning, resume, progress and reporting are the same.
    """
    jobs = [Job(it) for it in items]
    progress = Progress(len(jobs), enabled=verbose > 0)
    todo = plan(segmenter, jobs, output, overwrite, progress, verbose, error, analyze)
    _describe_derivatives(segmenter, todo, output, progress if verbose else None)
    try:
        if todo:
            (executor or InProcess()).run(ScanPipeline(segmenter, todo, progress, verbose, on_result, error,
                                                       analyze))
    except KeyboardInterrupt as exc:  # (done, total) for the message that says how to resume
        exc.batch_progress = (sum(j.status in ("done", "skipped") for j in jobs), len(jobs))
        raise
    finally:
        progress.close()
    return jobs


def _describe_derivatives(segmenter, todo: Sequence[Job], output: Optional[str], progress) -> None:
    """``dataset_description.json`` in an output folder receiving a BIDS dataset's scans (kept if present)."""
    from ..io.bids import describe_derivatives
    from .inputs import bids_derivative

    for root in sorted({j.item.root.resolve() for j in todo if bids_derivative(j.item, output)}):
        written = describe_derivatives(Path(output), root, segmenter.provenance(None)["GeneratedBy"][0])
        if written is not None and progress is not None:
            progress.say(f"BIDS derivatives: {written}")


def _fail(job: Job, reason: str, progress: Progress, error) -> None:
    job.status, job.reason = "failed", reason
    progress.step()
    progress.error(error, reason)


_END = object()


def run_job(segmenter, job: Job, on_result: Optional[Callable] = None, analyze: bool = False) -> Job:
    """One scan, start to end, through the batch's stages (read, segment, analyse with ``analyze``,
    ``on_result``, write atomically): the job every executor runs. Failures are recorded on the job, never
    raised."""
    ScanPipeline(segmenter, [job], Progress(1, enabled=False), 0, on_result, lambda message: None, analyze).run()
    return job


class InProcess:
    """The default executor: the scans run in this process, :meth:`ScanPipeline.run`."""

    def run(self, pipeline: "ScanPipeline") -> None:
        pipeline.run()


class ScanPipeline:
    """Reader thread → prediction (main thread) → writer thread. An executor that runs the scans elsewhere
    uses its ``segmenter``, ``todo``, ``on_result`` and ``analyze``, and reports each finished job with
    :meth:`finish`."""

    def __init__(self, segmenter, todo: List[Job], progress: Progress, verbose: int, on_result, error,
                 analyze: bool = False):
        self.segmenter, self.todo, self.progress, self.analyze = segmenter, todo, progress, analyze
        self.verbose, self.on_result, self.error = verbose, on_result, error
        self.loaded: "queue.Queue" = queue.Queue(maxsize=1)
        self.written: "queue.Queue" = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.done_lock = threading.Lock()

    def run(self) -> None:
        threads = [threading.Thread(target=self._reader, name="sciseg-reader", daemon=True),
                   threading.Thread(target=self._writer, name="sciseg-writer", daemon=True)]
        for t in threads:
            t.start()
        try:
            if self.verbose and self.progress.total == 1 and self.segmenter._loaded is None:
                self.progress.say(f"{self.todo[0].path}: {STAGES['load']}", err=True)
            self.segmenter.load()  # overlaps with reading the first input
            if len(self.todo) > 1:
                self.segmenter.engine.keep_compiled = True  # speed over memory: no recompiling per input
            while True:
                raise_if_requested()  # a Ctrl-C whose exception Python swallowed (see stopping)
                item = self.loaded.get()
                if item is _END:
                    break
                self._predict(*item)
        finally:
            self.stop.set()
            self.written.put(_END)
            threads[1].join()  # let the current write finish: no partial outputs, even on Ctrl-C

    def _reader(self) -> None:
        for job in self.todo:
            if self.stop.is_set():
                break
            try:
                item = (job, load_image(job.path), None)
            except SciSegError as exc:
                item = (job, None, str(exc))
            except Exception as exc:  # noqa: BLE001 - isolate any reading failure to its input
                item = (job, None, f"{job.path}: cannot read ({type(exc).__name__}: {exc})")
            while not self.stop.is_set():
                try:
                    self.loaded.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
        self.loaded.put(_END)

    def _predict(self, job: Job, image, problem: Optional[str]) -> None:
        t0 = time.perf_counter()
        if problem is not None:
            job.status, job.reason = "failed", problem
            self.finish(job, t0)
            return
        scan = ScanProgress(str(job.path)) if self.verbose and self.progress.total == 1 else None
        try:
            result = self.segmenter.segment(image, progress=scan)
            if scan is not None:
                scan("write", 0, 0)
                scan.close()
            job.counts = {k: int(m.dataobj[...].sum()) for k, m in result.masks.items()}
            job.stats = {**{k: round(float(v), 3) if isinstance(v, float) else v for k, v in result.stats.items()},
                         **{f"{k}_seconds": round(v, 3) for k, v in result.timings.items()}}
            job.checks = _checks(self.segmenter, result)
            if self.analyze:
                from .lesion_jobs import analyze_result
                job.analysis, job.extra = analyze_result(self.segmenter, job.plan, result, job.path)
        except SciSegError as exc:
            job.status, job.reason = "failed", str(exc)
            self.finish(job, t0)
            return
        except Exception as exc:  # noqa: BLE001 - one input's failure must not stop the batch
            job.status, job.reason = "failed", f"{job.path}: segmentation failed ({type(exc).__name__}: {exc})"
            self.finish(job, t0)
            return
        self.written.put((job, result, t0))

    def _writer(self) -> None:
        while True:
            item = self.written.get()
            if item is _END:
                return
            job, result, t0 = item
            try:
                self.segmenter.write(result, job.outputs, job.path, job.extra)
                job.status = "done"
            except SciSegError as exc:
                job.status, job.reason = "failed", str(exc)
            except OSError as exc:
                job.status, job.reason = "failed", f"{job.path}: cannot write outputs ({exc})"
            job.extra = []
            if job.status == "done" and self.on_result is not None:
                self._after_write(job, result)
            self.finish(job, t0)

    def _after_write(self, job: Job, result) -> None:
        """``on_result`` (QC) for a scan whose files are written: its failure is reported, the scan stays done."""
        try:
            self.on_result(job, result)
        except Exception as exc:  # noqa: BLE001 - QC never undoes or blocks a segmentation
            self.progress.say(f"sciseg: warning: {job.path}: QC not written ({type(exc).__name__}: {exc})",
                              err=True)

    def finish(self, job: Job, t0: Optional[float] = None) -> None:
        with self.done_lock:
            if t0 is not None:  # None: timed where it ran
                job.seconds = time.perf_counter() - t0
            self.progress.step()
            if job.status == "failed":
                self.progress.error(self.error, job.reason)
            elif self.verbose:
                self._report(job)
            warning = unusable_warning(job, self.segmenter.task) if job.status == "done" and self.verbose else None
            if warning:  # (here, not on the cluster's workers, which run quietly)
                self.progress.say(warning, err=True)

    def _report(self, job: Job) -> None:
        progress = self.progress
        counts = ", ".join(f"{k} {v} voxels" for k, v in job.counts.items())
        outs = ", ".join(str(p) for p in job.outputs.values())
        tag = f"[{progress.n}/{progress.total}] " if progress.total > 1 else ""
        progress.say(f"{tag}{job.path} → {outs} ({counts}; {job.seconds:.1f} s{progress.eta()})")
        if self.verbose > 1 and job.stats:
            progress.say("  stats: " + json.dumps(job.stats, sort_keys=True))


def _checks(segmenter, result) -> dict:
    from ..qc import Roles
    from ..qc.plausibility import scan_checks
    return scan_checks(result.masks, result.image.affine, Roles.of(segmenter.task.labels), result.uncertain)


def unusable_warning(job: Job, task) -> Optional[str]:
    """One console line for a scan whose plausibility flags say its output is likely unusable, else None
    (asking whether the scan is of the ``task``'s contrasts)."""
    from ..qc.plausibility import likely_unusable
    flags = list(job.checks.get("flags") or [])
    if not likely_unusable(flags):
        return None
    kinds = "/".join(suffix.lstrip("_") for suffix in task.bids_suffixes)
    return (f"sciseg: warning: {job.path}: output likely unusable ({', '.join(flags)}); is this a {kinds} "
            f"spinal-cord scan? Check it in the QC report (-qc)")


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
