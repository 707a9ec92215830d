"""A batch's scans on Dask distributed: one task per scan, the model loaded once per worker.

- Before fan-out, the client installs and fully verifies the model once and pins it in the segmenter's
  picklable description (task, release tag, absolute models folder). A :class:`SegmenterPlugin`, registered
  with ``Client.register_plugin``, rebuilds the segmenter from that description on every worker (present and
  future) and loads it there once; a worker that cannot find the verified model fails with one line, it never
  downloads (parallel first installs are a known SCT failure).
- Each task runs :func:`~sct_task_sciseg.batch.executors.run_job`, the in-process batch's own stages; outputs
  are written by the worker, atomically, so a killed worker leaves no partial output. Finished jobs come back
  as they complete (``as_completed``) into the batch's progress bar and summary.
- Worker deaths: the scheduler re-runs a scan whose worker died on another worker, and fails it with
  ``KilledWorker`` once it has been on ``allowed_failures + 1`` workers that died. This batch sets the
  scheduler's ``allowed_failures`` to 1 while it runs (dask's default, 3, would let one bad scan take down
  four workers), and worker saturation to 1.0, so a worker holds only the scans it is running and a death
  blames no waiting scan; both are restored at the end. Exceptions inside a scan are not retried: they are
  the scan's failure (bad input), reported like in the local batch.

Imported only when a cluster is used: ``import sct_task_sciseg`` never imports Dask.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import threading
import uuid
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker

from ..errors import ModelError, SciSegError
from ..pipeline.config import SegmenterConfig
from ..tasks import Task
from .executors import ClusterSpec, SlurmOptions, cluster_shape, machine_cores, machine_memory, run_job
from .runner import Job

ALLOWED_FAILURES = 1
SATURATION = 1.0


# -- on the workers ------------------------------------------------------------------------------------------

class SegmenterPlugin(WorkerPlugin):
    """Builds and loads one segmenter per worker from a :class:`SegmenterConfig` (rebuilt, never shipped)."""

    idempotent = True  # registering the same description again keeps the loaded model

    def __init__(self, config: SegmenterConfig):
        self.config = config
        self.name = plugin_name(config)
        self._segmenter = None
        self._problem: Optional[BaseException] = None
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"config": self.config, "name": self.name}

    def __setstate__(self, state):
        self.__init__(state["config"])

    async def setup(self, worker) -> None:
        """Load the model in a thread, so the worker keeps answering the scheduler meanwhile."""
        address, threads = worker.address, worker.state.nthreads
        await asyncio.get_running_loop().run_in_executor(None, self.segmenter, address, threads)

    def segmenter(self, address: str = "", threads: Optional[int] = None):
        """The loaded segmenter (loads it on first use); raises why it could not be loaded."""
        with self._lock:
            if self._segmenter is None and self._problem is None:
                try:
                    self._segmenter = _load(self.config, address, threads)
                except BaseException as exc:  # noqa: BLE001 - kept and raised by every task on this worker
                    self._problem = exc
            if self._problem is not None:
                raise self._problem
            return self._segmenter

    def teardown(self, worker) -> None:
        self._segmenter = None


def _load(config: SegmenterConfig, address: str, threads: Optional[int]):
    from ..inference.tuning import configure_process
    from ..pipeline import Segmenter
    from ..weights import find_installed

    if config.model_folder is None:
        task, tag = config.resolved_task()
        if find_installed(task, tag, config.models_dir) is None:  # raises ModelError when changed
            raise ModelError(f"{config.models_dir}: {task.name}@{tag} is not installed as seen from worker "
                             f"{address}; workers never download: install it once in a models folder every "
                             "worker can read")
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
    """Runs each scan as one task on ``client``'s cluster (see the module's notes)."""

    def __init__(self, client: Client, allowed_failures: int = ALLOWED_FAILURES):
        self.client, self.allowed_failures = client, allowed_failures

    def run(self, segmenter, todo: List[Job], on_result: Optional[Callable], finish: Callable[[Job], None],
            analyze: bool = False) -> None:
        plugin = SegmenterPlugin(worker_config(segmenter))
        self.client.register_plugin(plugin)  # raises when a worker cannot load the model
        run = uuid.uuid4().hex[:8]
        keys = [f"sciseg-{Path(j.path.name).name}-{run}-{i}" for i, j in enumerate(todo)]
        with scheduler_policy(self.client, self.allowed_failures):
            futures = self.client.map(run_scan, [plugin.name] * len(todo), [_absolute(j) for j in todo],
                                      on_result=on_result, analyze=analyze, key=keys, pure=False)
            jobs: Dict[str, Job] = dict(zip(keys, todo))
            try:
                for future in as_completed(futures):
                    job = jobs[future.key]
                    _collect(future, job)
                    future.release()
                    finish(job)
            except BaseException:
                self.client.cancel(futures)
                raise
            finally:
                _remove_stale_temps(todo)


def _absolute(job: Job) -> Job:
    """A copy of ``job`` with absolute paths (workers may run in other folders)."""
    item = replace(job.item, path=Path(os.path.abspath(job.item.path)))
    plan = job.plan.absolute() if job.plan is not None else None
    return replace(job, item=item, plan=plan, outputs=plan.images if plan else job.outputs)


def _collect(future, job: Job) -> None:
    """Copy the finished job that came back into ``job`` (paths as given here), or record why it failed."""
    from distributed.scheduler import KilledWorker

    try:
        done = future.result()
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


# -- clusters ------------------------------------------------------------------------------------------------

def local_cluster(workers: int, threads: int, dashboard: str = ":8787") -> LocalCluster:
    """Worker processes on this machine (logs from ERROR up: a worker slow to exit at the end is killed, which
    dask reports as a warning)."""
    return LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
                        dashboard_address=dashboard, silence_logs=logging.ERROR)


def _flatten(tree: dict, prefix: str = "") -> Dict[str, object]:
    out: Dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_cluster_config(path: Optional[str]) -> Tuple[Dict[str, object], Dict[str, object]]:
    """(``jobqueue.slurm`` section as SLURMCluster keywords, every other key flattened for
    ``dask.config.set``) of a Dask configuration YAML (the format of ``~/.config/dask/jobqueue.yaml``)."""
    if not path:
        return {}, {}
    import yaml
    try:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SciSegError(f"{path}: cannot read the cluster configuration ({exc})") from None
    if not isinstance(tree, dict) or not isinstance(tree.get("jobqueue", {}), dict):
        raise SciSegError(f"{path}: not a Dask configuration (expected a mapping such as jobqueue: slurm: ...)")
    section = dict((tree.get("jobqueue") or {}).pop("slurm", None) or {})
    return {k.replace("-", "_"): v for k, v in section.items()}, _flatten(tree)


def slurm_kwargs(options: SlurmOptions, threads: Optional[int] = None, dashboard: str = ":8787") -> dict:
    """SLURMCluster keywords: the flags, over the configuration file, over Dask's own configuration. Each job
    runs ``cores // threads`` worker processes of ``threads`` threads (the threads given, else
    ``processes`` from the configuration, else the local rule, :func:`cluster_shape`)."""
    from dask.utils import parse_bytes

    kwargs, _ = read_cluster_config(options.config_file)
    flags = {"queue": options.queue, "account": options.account, "cores": options.cores,
             "memory": options.memory, "walltime": options.walltime,
             "job_script_prologue": list(options.prologue) or None}
    kwargs.update({k: v for k, v in flags.items() if v is not None})
    for key in ("cores", "memory", "processes"):
        kwargs.setdefault(key, dask.config.get(f"jobqueue.slurm.{key}", None))
    if not kwargs["cores"] or not kwargs["memory"]:
        raise SciSegError("-scheduler slurm: give the cores and memory of a job (-slurm-cores, -slurm-memory, "
                          "or jobqueue.slurm.cores/memory in the configuration file)")
    cores = int(kwargs["cores"])
    if threads or not kwargs["processes"]:
        kwargs["processes"] = cluster_shape(cores, parse_bytes(kwargs["memory"]), threads=threads)[0]
    kwargs["scheduler_options"] = {"dashboard_address": dashboard,
                                   **dask.config.get("jobqueue.slurm.scheduler-options", {}),
                                   **(kwargs.get("scheduler_options") or {})}
    return dict(kwargs, cores=cores, processes=int(kwargs["processes"]))


def slurm_cluster(options: SlurmOptions, threads: Optional[int] = None, dashboard: str = ":8787"):
    """A ``dask_jobqueue.SLURMCluster`` with no job submitted yet (``cluster.scale(jobs=N)``)."""
    from dask_jobqueue import SLURMCluster
    return SLURMCluster(**slurm_kwargs(options, threads, dashboard))


@contextlib.contextmanager
def connect(spec: ClusterSpec, say: Callable[[str], None] = print) -> Iterator[Tuple[Client, Optional[int]]]:
    """``(client, threads per worker)`` for ``spec``; clusters started here are closed on exit."""
    with contextlib.ExitStack() as stack:
        if spec.scheduler == "local":
            workers, threads = cluster_shape(machine_cores(), machine_memory(), spec.workers, spec.threads)
            cluster = stack.enter_context(local_cluster(workers, threads, spec.dashboard))
            where = f"local cluster: {workers} workers x {threads} threads"
        elif spec.scheduler == "slurm":
            stack.enter_context(dask.config.set(read_cluster_config(spec.slurm.config_file)[1]))
            kwargs = slurm_kwargs(spec.slurm, spec.threads, spec.dashboard)
            processes, threads = kwargs["processes"], kwargs["cores"] // kwargs["processes"]
            cluster = stack.enter_context(slurm_cluster(spec.slurm, spec.threads, spec.dashboard))
            cluster.scale(jobs=spec.slurm.jobs)
            where = (f"SLURM: {spec.slurm.jobs} jobs x {processes} workers x {threads} threads (workers join "
                     "as their jobs start)")
        else:
            cluster = spec.scheduler
        try:
            client = stack.enter_context(Client(cluster, timeout="30s"))
        except (OSError, TimeoutError) as exc:
            raise SciSegError(f"-scheduler {spec.scheduler}: cannot reach the scheduler ({exc})") from None
        if isinstance(cluster, str):
            threads = spec.threads or uniform_threads(client)
            where = f"scheduler {spec.scheduler}: {len(client.nthreads())} workers"
        link = client.dashboard_link
        say(f"{where}; dashboard: {link}" if link else f"{where}; no dashboard (pip install bokeh)")
        yield client, threads
