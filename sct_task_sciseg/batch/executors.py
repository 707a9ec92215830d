"""Where a batch's scans run: in this process (the default), or one task per scan on a Dask cluster.

An executor only runs the per-scan work; planning, resume, the progress bar, failure reports and the summary
stay in :func:`~sct_task_sciseg.batch.runner.run_batch`. It has one method::

    executor.run(segmenter, todo, on_result, finish)   # finish(job) as each scan's job comes back

This module needs no Dask: it sizes clusters, describes them (:class:`ClusterSpec`) and opens one through
:mod:`sct_task_sciseg.batch.cluster`, imported only then. :func:`segment_many` is the Python face of it all.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

from ..errors import SciSegError
from ..machine import cores as machine_cores, total_memory as machine_memory  # noqa: F401 - cluster
from .inputs import expand
from .progress import Progress
from .runner import Job, _Pipeline, run_batch

#: Peak memory of one worker running SCIsegV2 on a full-size scan (1.6–2.8 GB measured), rounded up: a
#: local cluster starts no more workers than the machine's memory holds.
WORKER_MEMORY = 3 * 2 ** 30
INSTALL = 'pip install "sct_task_sciseg[cluster]"'


def run_job(segmenter, job: Job, on_result: Optional[Callable] = None, analyze: bool = False) -> Job:
    """One scan, start to end, through the same stages as the in-process batch (read, segment, analyse with
    ``analyze``, ``on_result``, write atomically); failures are recorded on the job, never raised."""
    quiet = Progress(1, enabled=False)
    _Pipeline(segmenter, [job], quiet, 0, on_result, lambda message: None, analyze).run()
    return job


def cluster_shape(cores: int, memory: Optional[int] = None, workers: Optional[int] = None,
                  threads: Optional[int] = None) -> Tuple[int, int]:
    """(worker processes, threads each) for ``cores`` cores and ``memory`` bytes; never more threads in all
    than cores, unless both are given. Default: as many workers as cores, fewer when memory holds fewer
    (:data:`WORKER_MEMORY` each), the cores then shared out as threads (8 cores, 16 GB: 4 × 2)."""
    cores = max(1, int(cores))
    if workers and threads:
        return int(workers), int(threads)
    if threads:
        return max(1, cores // int(threads)), int(threads)
    if workers:
        return int(workers), max(1, cores // int(workers))
    most = cores if memory is None else max(1, min(cores, int(memory // WORKER_MEMORY)))
    threads = -(-cores // most)  # ceil: the fewest threads per worker that fill the cores
    return max(1, cores // threads), threads


@dataclass(frozen=True)
class SlurmOptions:
    """A SLURM job of workers (``dask_jobqueue.SLURMCluster``); None = dask-jobqueue's configuration
    (``~/.config/dask/jobqueue.yaml``, or the file given as ``config_file``)."""

    queue: Optional[str] = None
    account: Optional[str] = None
    cores: Optional[int] = None  # per job
    memory: Optional[str] = None  # per job, e.g. "32GB"
    walltime: Optional[str] = None  # e.g. "02:00:00"
    jobs: int = 1
    prologue: Tuple[str, ...] = ()  # shell lines before the worker starts (module load, venv activation)
    config_file: Optional[str] = None  # a Dask configuration YAML (jobqueue.slurm.*, distributed.*)


@dataclass(frozen=True)
class ClusterSpec:
    """Which cluster: ``local``, ``tcp://HOST:PORT`` (a running scheduler) or ``slurm``."""

    scheduler: str = "local"
    workers: Optional[int] = None  # local: worker processes
    threads: Optional[int] = None  # threads per worker (each worker's network threads, and its task slots)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    dashboard: str = ":8787"  # local and slurm: where the scheduler serves its dashboard

    def __post_init__(self):
        ok = self.scheduler in ("local", "slurm") or "://" in self.scheduler
        if not ok:
            raise SciSegError(f"-scheduler {self.scheduler}: expected local, slurm or tcp://HOST:PORT")


def require_dask(slurm: bool = False) -> None:
    """Raise one line saying what to install when Dask (or dask-jobqueue for SLURM) is missing."""
    names = ("dask", "distributed") + (("dask_jobqueue",) if slurm else ())
    for name in names:
        try:
            __import__(name)
        except ImportError:
            raise SciSegError(f"running on a cluster needs {name.replace('_', '-')}: {INSTALL}") from None


@contextlib.contextmanager
def open_cluster(spec: ClusterSpec, say: Callable[[str], None] = print) -> Iterator[Tuple[object, Optional[int]]]:
    """``(executor, threads per worker)`` on the cluster ``spec`` describes; the cluster (when started here)
    is shut down on exit. The threads are those the segmenter must be configured with."""
    require_dask(slurm=spec.scheduler == "slurm")
    from . import cluster
    with cluster.connect(spec, say) as (client, threads):
        yield cluster.DaskExecutor(client), threads


def segment_many(paths: Sequence[Union[str, os.PathLike]], output: Optional[str] = None, *, client=None,
                 scheduler: Optional[str] = None, workers: Optional[int] = None, threads: Optional[int] = None,
                 overwrite: bool = False, verbose: int = 0, on_result: Optional[Callable] = None,
                 slurm: Optional[SlurmOptions] = None, **options) -> List[Job]:
    """Segment many scans; returns one :class:`~sct_task_sciseg.batch.runner.Job` per input (``status`` done,
    skipped or failed, ``outputs``, ``counts``, ``seconds``, ``reason``).

    ``paths``: files, folders or BIDS datasets; ``output``: an output folder (``"derivatives/sciseg/"``).
    Where the scans run: ``client`` (your own ``distributed.Client``; left open), else ``scheduler``
    (``"local"``, ``"tcp://HOST:PORT"``, ``"slurm"`` with ``slurm=SlurmOptions(...)``; started and closed
    here), else this process. ``options`` are :class:`~sct_task_sciseg.pipeline.Segmenter` keywords; the
    model is installed and verified here once, before any scan is sent out.
    """
    from ..pipeline import Segmenter

    items = expand([str(p) for p in paths])
    if client is None and scheduler is None:
        return run_batch(Segmenter(threads=threads, **options), items, output, overwrite=overwrite,
                         verbose=verbose, on_result=on_result)
    require_dask()
    from . import cluster
    with contextlib.ExitStack() as stack:
        if client is None:
            spec = ClusterSpec(scheduler, workers, threads, slurm or SlurmOptions())
            client, threads = stack.enter_context(cluster.connect(spec, print if verbose else _silent))
        elif threads is None:
            threads = cluster.uniform_threads(client)
        segmenter = Segmenter(threads=threads, **options)
        return run_batch(segmenter, items, output, overwrite=overwrite, verbose=verbose, on_result=on_result,
                         executor=cluster.DaskExecutor(client))


def _silent(line: str) -> None:
    pass
