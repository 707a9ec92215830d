"""Where a batch's scans run, described without Dask: the cluster a run asks for (:class:`ClusterSpec`, its
options in one place) and the table of backends chosen by the scheduler's scheme (:data:`BACKENDS`).

Adding a dask-jobqueue system is one entry in :data:`BACKENDS` (its ``jobqueue.<name>`` configuration
section is read like SLURM's) plus documentation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from ..errors import SciSegError

DASK = ("dask", "distributed")
JOBQUEUE = DASK + ("dask_jobqueue",)


@dataclass(frozen=True)
class Backend:
    """One way to run scans: ``module.opener(spec, say)`` (in this package's ``batch``) is a context manager
    yielding ``(executor, threads per worker)``."""

    description: str
    module: str
    opener: str
    needs: Tuple[str, ...] = ()  # importable modules (checked before any work)
    cluster_class: Optional[str] = None  # dask-jobqueue's class, for batch systems
    queue_command: Optional[str] = None  # lists the user's jobs by id (one per line), to see jobs that are gone
    test_command: Optional[str] = None  # checks a job script without submitting it (refusals in seconds)
    planner: Optional[str] = None  # ``module.planner(spec)``: the workers' threads, known before starting


#: scheme (``local``, ``slurm``, or the address scheme ``tcp``/``tls``) → backend; ``None``: in this process.
BACKENDS = {
    None: Backend("this process", "executors", "in_process"),
    "local": Backend("a Dask cluster on this machine", "connect", "open_local", DASK,
                     planner="local_threads"),
    "tcp": Backend("a running Dask scheduler (unencrypted)", "connect", "open_address", DASK),
    "tls": Backend("a running Dask scheduler over TLS", "connect", "open_address", DASK),
    "slurm": Backend("SLURM jobs of Dask workers", "jobqueue", "open_jobqueue", JOBQUEUE, "SLURMCluster",
                     "squeue -h -o %i", "sbatch --test-only", "job_threads"),
    "pbs": Backend("PBS jobs of Dask workers", "jobqueue", "open_jobqueue", JOBQUEUE, "PBSCluster",
                   "qselect", planner="job_threads"),
    "sge": Backend("SGE jobs of Dask workers", "jobqueue", "open_jobqueue", JOBQUEUE, "SGECluster",
                   planner="job_threads"),
    "lsf": Backend("LSF jobs of Dask workers", "jobqueue", "open_jobqueue", JOBQUEUE, "LSFCluster",
                   "bjobs -noheader -o jobid", planner="job_threads"),
}


def scheme(scheduler: Optional[str]) -> Optional[str]:
    """``tcp://h:1`` → ``tcp``; ``slurm`` → ``slurm``; None → None."""
    if scheduler is None:
        return None
    return scheduler.split("://", 1)[0].lower() if "://" in scheduler else scheduler.lower()


def backend_for(scheduler: Optional[str]) -> Backend:
    found = BACKENDS.get(scheme(scheduler))
    if found is None:
        names = ", ".join(k for k in BACKENDS if k and k not in ("tcp", "tls"))
        raise SciSegError(f"-scheduler {scheduler}: expected {names}, tcp://HOST:PORT or tls://HOST:PORT")
    return found


@dataclass(frozen=True)
class JobqueueOptions:
    """Jobs of workers on a batch system (dask-jobqueue); None = the configuration's value (the
    ``jobqueue.<system>`` section of ``config_file``, then ``~/.config/dask/jobqueue.yaml``)."""

    queue: Optional[str] = None
    account: Optional[str] = None
    cores: Optional[int] = None  # per job
    memory: Optional[str] = None  # per job, e.g. "32GB"
    walltime: Optional[str] = None  # e.g. "02:00:00"; dask-jobqueue's default is 00:30:00
    jobs: int = 1
    prologue: Tuple[str, ...] = ()  # shell lines before the worker starts (module load, venv activation)
    config_file: Optional[str] = None  # a Dask configuration YAML (jobqueue.<system>.*, distributed.*)
    resubmit: Optional[int] = None  # jobs submitted to replace jobs that are gone, at most (None: as many as jobs)


SlurmOptions = JobqueueOptions  # the name of the SLURM-only release


@dataclass(frozen=True)
class ClusterSpec:
    """Which cluster: ``local``, ``tcp://HOST:PORT``/``tls://HOST:PORT`` (a running scheduler), or a batch
    system of :data:`BACKENDS` (``slurm``, ``pbs``, ``sge``, ``lsf``)."""

    scheduler: str = "local"
    workers: Optional[int] = None  # local: worker processes
    threads: Optional[int] = None  # threads per worker (each worker's network threads, and its task slots)
    slurm: JobqueueOptions = field(default_factory=JobqueueOptions)  # any batch system's jobs
    dashboard: Optional[str] = None  # local and batch systems: where to serve the dashboard (None: no dashboard)
    logs: Optional[str] = None  # batch systems: the folder of the workers' job logs

    def __post_init__(self):
        backend_for(self.scheduler)

    @property
    def backend(self) -> Backend:
        return backend_for(self.scheduler)

    @property
    def system(self) -> str:
        """The batch system's name (its ``jobqueue.<system>`` configuration section)."""
        return scheme(self.scheduler) or ""
