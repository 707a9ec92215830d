"""A batch's scans on Dask distributed: one task per scan, the model loaded once per worker.

- Before fan-out, the client installs and fully verifies the model once and pins it in the segmenter's
  picklable description (task, release tag, absolute models folder). A :class:`SegmenterPlugin`, registered
  with ``Client.register_plugin``, rebuilds the segmenter from that description on every worker (present and
  future) and loads it there once; a worker that cannot find the verified model fails with one line, it never
  downloads (parallel first installs are a known SCT failure).
- Each task runs :func:`~sct_task_sciseg.batch.runner.run_job`, the in-process batch's own stages; outputs
  are written by the worker, atomically, so a killed worker leaves no partial output. Finished jobs come back
  as they complete (``as_completed``) into the batch's progress bar and summary.
- Worker deaths: the scheduler re-runs a scan whose worker died on another worker, and fails it with
  ``KilledWorker`` once it has been on ``allowed_failures + 1`` workers that died. This batch sets the
  scheduler's ``allowed_failures`` to 1 while it runs (dask's default, 3, would let one bad scan take down
  four workers), and worker saturation to 1.0, so a worker holds only the scans it is running and a death
  blames no waiting scan; both are restored at the end. Exceptions inside a scan are not retried: they are
  the scan's failure (bad input), reported like in the local batch.

Clusters are opened by :mod:`.connect` (this machine, an address) and :mod:`.jobqueue` (batch systems).
Imported only when a cluster is used: ``import sct_task_sciseg`` never imports Dask.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import threading
import time
import uuid
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from distributed import Client, WorkerPlugin, as_completed, get_worker

from ..errors import ModelError, SciSegError
from ..pipeline.config import SegmenterConfig
from ..stopping import raise_if_requested
from ..tasks import Task
from .runner import Job, run_job

ALLOWED_FAILURES = 1
SATURATION = 1.0
WATCH_SECONDS = 2.0


# -- on the workers ------------------------------------------------------------------------------------------

class SegmenterPlugin(WorkerPlugin):
    """Builds and loads one segmenter per worker from a :class:`SegmenterConfig` (rebuilt, never shipped)."""

    idempotent = True  # registering the same description again keeps the loaded model

    def __init__(self, config: SegmenterConfig, tune: bool = True):
        self.config, self.tune = config, tune
        self.name = plugin_name(config)
        self._segmenter = None
        self._problem: Optional[BaseException] = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"config": self.config, "name": self.name, "tune": self.tune}

    def __setstate__(self, state):
        self.__init__(state["config"], state.get("tune", True))

    async def setup(self, worker) -> None:
        """Load the model in a thread, so the worker keeps answering the scheduler meanwhile."""
        address, threads = worker.address, worker.state.nthreads
        await asyncio.get_running_loop().run_in_executor(None, self.segmenter, address, threads)

    def segmenter(self, address: str = "", threads: Optional[int] = None):
        """The loaded segmenter (loads it on first use); raises why it could not be loaded."""
        with self._lock:
            if self._segmenter is None and self._problem is None:
                try:
                    self._segmenter = _load(self.config, address, threads if self.tune else None)
                except BaseException as exc:  # noqa: BLE001 - kept and raised by every task on this worker
                    self._problem = exc
            if self._problem is not None:
                raise self._problem
            return self._segmenter

    def teardown(self, worker) -> None:
        self._segmenter = None


def _load(config: SegmenterConfig, address: str, threads: Optional[int]):
    """The loaded segmenter; ``threads`` None: leave the worker process as it is (a user's own worker)."""
    from ..inference.tuning import configure_process
    from ..pipeline import Segmenter
    from ..weights import find_installed

    if config.model_folder is None:
        task, tag = config.resolved_task()
        if find_installed(task, tag, config.models_dir) is None:  # raises ModelError when changed
            raise ModelError(f"{config.models_dir}: {task.name}@{tag} is not installed as seen from worker "
                             f"{address}; workers never download: install it once in a models folder every "
                             "worker can read")
    if threads is not None:  # a worker this package started: tuned like the sciseg process
        configure_process(config.threads or threads)
    segmenter = Segmenter.from_config(config)
    segmenter.load()
    segmenter.engine.keep_compiled = True  # many scans: no recompiling per scan
    return segmenter


def run_scan(plugin: str, job: Job, on_result: Optional[Callable] = None, analyze: bool = False) -> Job:
    """The task of one scan, on a worker: its job, finished (done or failed)."""
    worker = get_worker()
    found = worker.plugins.get(plugin)
    if found is None:
        raise SciSegError(f"{job.path}: worker {worker.address} has no segmenter (plugin {plugin} missing)")
    run_job(found.segmenter(worker.address, worker.state.nthreads), job, on_result, analyze)
    job.stats["worker"] = worker.address
    return job


def plugin_name(config: SegmenterConfig) -> str:
    return "sciseg-segmenter-" + hashlib.sha256(repr(config).encode()).hexdigest()[:16]


# -- on the client -------------------------------------------------------------------------------------------

def worker_config(segmenter) -> SegmenterConfig:
    """``segmenter``'s description with its model installed (here, once), fully verified and pinned by tag
    and absolute models folder, so that workers rebuild the same segmenter without looking anything up."""
    from ..weights import find_installed

    config = segmenter.config.with_(quiet=True)
    model = segmenter.model  # installs when missing, with a message
    if model is None:
        return config.with_(model_folder=str(Path(config.model_folder).resolve()))
    models_dir = model.path.parent.parent.resolve()
    find_installed(segmenter.task, model.tag, models_dir, full_check=True)  # every file re-hashed
    task = config.task if isinstance(config.task, Task) else segmenter.task.name
    return config.with_(task=task, tag=model.tag, models_dir=str(models_dir))


def _swap_policy(dask_scheduler, allowed_failures: int, saturation: float) -> Tuple[int, float]:
    """Set the scheduler's worker-death policy; returns the previous one (runs on the scheduler)."""
    old = (dask_scheduler.allowed_failures, dask_scheduler.WORKER_SATURATION)
    dask_scheduler.allowed_failures = allowed_failures
    if not math.isinf(old[1]) and not math.isinf(saturation):  # never switch queuing on or off mid-flight
        dask_scheduler.WORKER_SATURATION = saturation
    return old


@contextlib.contextmanager
def scheduler_policy(client: Client, allowed_failures: int = ALLOWED_FAILURES,
                     saturation: float = SATURATION) -> Iterator[None]:
    old = client.run_on_scheduler(_swap_policy, allowed_failures=allowed_failures, saturation=saturation)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # the scheduler may be gone
            client.run_on_scheduler(_swap_policy, allowed_failures=old[0], saturation=old[1])


class DaskExecutor:
    """Runs each scan as one task on ``client``'s cluster (see the module's notes). ``tune``: tune the worker
    processes (threads, allocator); only for clusters this package started, never a user's own workers.
    ``watch(left)``, when given, is called with the inputs not done every few seconds while nothing completes;
    it raises to stop a batch that cannot finish (every job of a batch system gone)."""

    def __init__(self, client: Client, allowed_failures: int = ALLOWED_FAILURES, tune: bool = True,
                 watch: Optional[Callable[[List[str]], None]] = None):
        self.client, self.allowed_failures, self.tune, self.watch = client, allowed_failures, tune, watch

    def run(self, pipeline) -> None:
        todo = pipeline.todo
        plugin = SegmenterPlugin(worker_config(pipeline.segmenter), self.tune)
        self.client.register_plugin(plugin)  # raises when a worker cannot load the model
        run = uuid.uuid4().hex[:8]
        keys = [f"sciseg-{Path(j.path.name).name}-{run}-{i}" for i, j in enumerate(todo)]
        with scheduler_policy(self.client, self.allowed_failures):
            futures = self.client.map(run_scan, [plugin.name] * len(todo), [_absolute(j) for j in todo],
                                      on_result=pipeline.on_result, analyze=pipeline.analyze, key=keys, pure=False)
            jobs: Dict[str, Job] = dict(zip(keys, todo))
            try:
                self._gather(futures, jobs, pipeline.finish)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.cancel(futures)
                raise
            finally:
                _remove_stale_temps(todo)

    def _gather(self, futures, jobs: Dict[str, Job], finish: Callable[[Job], None]) -> None:
        """Each finished job to ``finish`` as it comes back; ``watch`` while none does."""
        left, waiting, checked = dict(jobs), as_completed(futures), time.monotonic()
        while left:
            raise_if_requested()  # a Ctrl-C whose exception Python swallowed (see stopping): waits are bounded
            if waiting.has_ready():
                for future in waiting.next_batch(block=False):
                    self._fetch(future, left)
                    future.release()
                    finish(left.pop(future.key))
                continue
            time.sleep(0.1)
            if self.watch is not None and time.monotonic() - checked >= WATCH_SECONDS:
                self.watch([str(j.path) for j in left.values()])
                checked = time.monotonic()

    def _fetch(self, future, left: Dict[str, Job]) -> None:
        """The finished job into its place in ``left``; while its result cannot be fetched (it was held by a
        worker that died since, so the scheduler computes it again), ``watch`` keeps running."""
        while True:
            try:
                _collect(future, left[future.key], timeout=WATCH_SECONDS)
                return
            except TimeoutError:
                raise_if_requested()
                if self.watch is not None:
                    self.watch([str(j.path) for j in left.values()])


def _absolute(job: Job) -> Job:
    """A copy of ``job`` with absolute paths (workers may run in other folders)."""
    item = replace(job.item, path=Path(os.path.abspath(job.item.path)))
    plan = job.plan.absolute() if job.plan is not None else None
    return replace(job, item=item, plan=plan, outputs=plan.images if plan else job.outputs)


def _collect(future, job: Job, timeout: Optional[float] = None) -> None:
    """Copy the finished job that came back into ``job`` (paths as given here), or record why it failed;
    raises ``TimeoutError`` when its result is not there within ``timeout`` seconds."""
    from distributed.scheduler import KilledWorker

    try:
        done = future.result(timeout=timeout)
    except TimeoutError:
        raise
    except KilledWorker as exc:
        job.status = "failed"
        job.reason = (f"{job.path}: {exc.allowed_failures + 1} workers died while segmenting it (the last: "
                      f"{exc.last_worker.address}); not retried again")
    except SciSegError as exc:
        job.status, job.reason = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - a task's failure is that scan's failure
        job.status, job.reason = "failed", f"{job.path}: failed on the cluster ({type(exc).__name__}: {exc})"
    else:
        for f in fields(Job):
            if f.name not in ("item", "outputs", "plan"):
                setattr(job, f.name, getattr(done, f.name))


def _remove_stale_temps(jobs: List[Job]) -> None:
    """Temporary files left beside a scan's files (masks, maps, sidecars, analysis) by workers killed while
    writing (the files themselves are whole)."""
    for job in jobs:
        for tmp in job.plan.stale_temps() if job.plan is not None else ():
            tmp.unlink(missing_ok=True)


def uniform_threads(client: Client) -> Optional[int]:
    """The workers' thread count when all have the same (the segmenter's threads), else None."""
    counts = set(client.nthreads().values())
    return counts.pop() if len(counts) == 1 else None
