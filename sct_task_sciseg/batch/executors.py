"""Where a batch's scans run. An executor has one method::

    executor.run(pipeline)   # pipeline: runner.ScanPipeline; pipeline.finish(job) as each scan's job is done

:class:`~sct_task_sciseg.batch.runner.InProcess` runs them in this process (the default); the Dask executor
(:mod:`.cluster`) sends each scan's job, :func:`~sct_task_sciseg.batch.runner.run_job`, to a worker.
Planning, resume, the progress bar, failure reports and the summary stay in
:func:`~sct_task_sciseg.batch.runner.run_batch`. The backend is chosen from the scheduler's scheme by the
table :data:`~sct_task_sciseg.batch.backends.BACKENDS`; this module imports no Dask until one is opened.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from typing import Callable, Iterator, List, Optional, Protocol, Sequence, Tuple, Union

from ..errors import SciSegError
from ..tasks import resolve_task
from .backends import Backend, ClusterSpec, JobqueueOptions, backend_for
from .inputs import expand
from .runner import InProcess, Job, ScanPipeline, run_batch

INSTALL = 'pip install "sct_task_sciseg[cluster]"'


class Executor(Protocol):
    def run(self, pipeline: ScanPipeline) -> None:
        """Run every job of ``pipeline.todo``; call ``pipeline.finish(job)`` as each one is done or failed."""


def require_dask(scheduler: Optional[str] = "local") -> Backend:
    """The backend of ``scheduler``; raises one line saying what to install when a module it needs is missing
    (found without importing it: importing dask-jobqueue replaces the process's SIGINT handler)."""
    backend = backend_for(scheduler)
    for name in backend.needs:
        try:
            missing = importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # a module set to None, or a broken one
            missing = True
        if missing:
            raise SciSegError(f"running on a cluster needs {name.replace('_', '-')}: {INSTALL}")
    return backend


@contextlib.contextmanager
def in_process(spec: Optional[ClusterSpec] = None, say: Callable[[str], None] = print
               ) -> Iterator[Tuple[Executor, Optional[int]]]:
    yield InProcess(), spec.threads if spec else None


def planned_threads(spec: ClusterSpec) -> Optional[int]:
    """The workers' threads (the segmenter's) before the cluster starts; None when only the cluster knows."""
    backend = require_dask(spec.scheduler)
    if spec.threads or not backend.planner:
        return spec.threads
    return getattr(importlib.import_module(f"{__package__}.{backend.module}"), backend.planner)(spec)


@contextlib.contextmanager
def open_cluster(spec: ClusterSpec, say: Callable[[str], None] = print) -> Iterator[Tuple[Executor, Optional[int]]]:
    """``(executor, threads per worker)`` on the cluster ``spec`` describes, chosen from
    :data:`~sct_task_sciseg.batch.backends.BACKENDS`; a cluster started here is shut down on exit. The threads
    are those the segmenter must be configured with."""
    backend = require_dask(spec.scheduler)
    opener = getattr(importlib.import_module(f"{__package__}.{backend.module}"), backend.opener)
    with opener(spec, say) as opened:
        yield opened


def segment_many(paths: Sequence[Union[str, os.PathLike]], output: Optional[str] = None, *, client=None,
                 scheduler: Optional[str] = None, workers: Optional[int] = None, threads: Optional[int] = None,
                 overwrite: bool = False, verbose: int = 0, on_result: Optional[Callable] = None,
                 slurm: Optional[JobqueueOptions] = None, **options) -> List[Job]:
    """Segment many scans; returns one :class:`~sct_task_sciseg.batch.runner.Job` per input (``status`` done,
    skipped or failed, ``outputs``, ``counts``, ``seconds``, ``reason``).

    ``paths``: files, folders or BIDS datasets; ``output``: an output folder (``"derivatives/sciseg/"``).
    Where the scans run: ``client`` (your own ``distributed.Client``; left open, and its workers' processes
    are not tuned), else ``scheduler`` (``"local"``, ``"tcp://HOST:PORT"``, ``"tls://HOST:PORT"``, ``"slurm"``
    with ``slurm=JobqueueOptions(...)``; started and closed here), else this process. ``options`` are
    :class:`~sct_task_sciseg.pipeline.Segmenter` keywords; the model is installed and verified here once,
    before any scan is sent out.
    """
    from ..pipeline import Segmenter

    task = resolve_task(options.get("task"), options.get("tag"))[0]
    items = expand([str(p) for p in paths], task)
    if client is None and scheduler is None:
        return run_batch(Segmenter(threads=threads, **options), items, output, overwrite=overwrite,
                         verbose=verbose, on_result=on_result)
    require_dask()
    with contextlib.ExitStack() as stack:
        if client is None:
            spec = ClusterSpec(scheduler, workers, threads, slurm or JobqueueOptions())
            executor, threads = stack.enter_context(open_cluster(spec, print if verbose else _silent))
        else:
            cluster = importlib.import_module(f"{__package__}.cluster")
            executor = cluster.DaskExecutor(client, tune=False)
            threads = threads or cluster.uniform_threads(client)
        segmenter = Segmenter(threads=threads, **options)
        return run_batch(segmenter, items, output, overwrite=overwrite, verbose=verbose, on_result=on_result,
                         executor=executor)


def _silent(line: str) -> None:
    pass
