"""Jobs of Dask workers on a batch system (dask-jobqueue: SLURM; PBS, SGE, LSF by their table entry in
:data:`~sct_task_sciseg.batch.backends.BACKENDS`).

- The job's options: the flags, over ``-cluster-config`` (its ``jobqueue.<system>`` section, set over Dask's
  own configuration so that dask-jobqueue's defaults stay), over ``~/.config/dask/jobqueue.yaml``.
- Nobody else gets in: the scheduler speaks TLS with certificates made for this run (``Security.temporary()``),
  written for the workers into a private folder (0700) under the logs folder, which the job script names, and
  removed at the end; a client without them is refused. The dashboard is off unless asked for.
- A refused submission (unknown partition, oversized job, controller down) is one line within seconds: the job
  script is checked (``sbatch --test-only``) before anything is submitted.
- Jobs that are gone (cancelled, walltime reached, failed to submit) are replaced, up to ``resubmit`` jobs in
  all; after that the batch stops with what is left named, it never waits forever.
- On exit, every job this run submitted is cancelled, also after Ctrl-C or a failed submission.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

import dask

from ..errors import SciSegError
from .backends import Backend, ClusterSpec
from .cluster import DaskExecutor
from .connect import dashboard, read_cluster_config, warn
from .sizing import cluster_shape

COMMAND_SECONDS = 30
GRACE_SECONDS = 20.0  # a job without a job id (submission pending or failed) or with lost workers: gone after this


def import_jobqueue():
    """``dask_jobqueue``, with this process's SIGINT handler kept (0.9.0 replaces it when imported)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    import dask_jobqueue
    if main and previous is not None:
        signal.signal(signal.SIGINT, previous)
    return dask_jobqueue


def job_options(spec: ClusterSpec) -> dict:
    """The cluster class's keywords from the flags; the rest comes from ``jobqueue.<system>`` of the
    configuration (set by the caller). Each job runs ``cores // threads`` worker processes of ``threads``
    threads (the threads given, else ``processes`` from the configuration, else :func:`cluster_shape`)."""
    from dask.utils import parse_bytes

    system, o = spec.system, spec.slurm
    flags = {"queue": o.queue, "account": o.account, "cores": o.cores, "memory": o.memory,
             "walltime": o.walltime, "job_script_prologue": list(o.prologue) or None}
    kwargs = {k: v for k, v in flags.items() if v is not None}
    cores = kwargs.get("cores") or dask.config.get(f"jobqueue.{system}.cores", None)
    memory = kwargs.get("memory") or dask.config.get(f"jobqueue.{system}.memory", None)
    if not cores or not memory:
        raise SciSegError(f"-scheduler {system}: give the cores and memory of a job (-slurm-cores, -slurm-memory, "
                          f"or jobqueue.{system}.cores/memory in the configuration file)")
    cores, threads = int(cores), spec.threads
    if threads and threads > cores:
        raise SciSegError(f"-threads {threads}: a job has {cores} cores (-slurm-cores): use 1 to {cores}")
    processes = dask.config.get(f"jobqueue.{system}.processes", None)
    if threads or not processes:
        processes = cluster_shape(cores, parse_bytes(memory), threads=threads)[0]
    return dict(kwargs, cores=cores, memory=memory, processes=int(processes))


def job_threads(spec: ClusterSpec) -> int:
    """Each worker's threads on the jobs of ``spec`` (known before any job is submitted)."""
    with dask.config.set(read_cluster_config(spec.slurm.config_file)):
        options = job_options(spec)
    return options["cores"] // options["processes"]


def logs_folder(spec: ClusterSpec) -> Path:
    folder = Path(spec.logs or "sciseg_logs").absolute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SciSegError(f"{folder}: cannot create the folder of the workers' logs ({exc.strerror})") from None
    return folder


def make_cluster(spec: ClusterSpec, logs: Path, secrets: Optional[Path]):
    """The dask-jobqueue cluster of ``spec`` (no job submitted yet); with ``secrets``, TLS with certificates
    made for it, written there for the workers."""
    from distributed.security import Security

    backend = spec.backend
    cls = getattr(import_jobqueue(), backend.cluster_class)
    address = dashboard(spec)  # else: no dashboard, and the scheduler's HTTP routes on loopback only
    scheduler = dict(dask.config.get(f"jobqueue.{spec.system}.scheduler-options", None) or {})  # e.g. host
    scheduler.update({"dashboard_address": address} if address else {"dashboard": False,
                                                                      "dashboard_address": "127.0.0.1:0"})
    extra = {"security": Security.temporary(), "protocol": "tls://",
             "shared_temp_directory": str(secrets)} if secrets else {}
    workers = list(dask.config.get(f"jobqueue.{spec.system}.worker-extra-args", None) or [])
    return cls(**job_options(spec), log_directory=str(logs), scheduler_options=scheduler,
               worker_extra_args=workers + ["--no-dashboard"], **extra)


def check_submission(cluster, backend: Backend) -> None:
    """Raise one line when the batch system refuses the job script (checked, not submitted)."""
    if not backend.test_command:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(cluster.job_script())
    try:
        r = subprocess.run(shlex.split(backend.test_command) + [f.name], capture_output=True, text=True,
                           timeout=COMMAND_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SciSegError(f"-scheduler {backend.cluster_class}: cannot submit a job ({exc})") from None
    finally:
        os.unlink(f.name)
    if r.returncode != 0:
        said = " ".join((r.stderr or r.stdout).split()) or f"exit status {r.returncode}"
        raise SciSegError(f"{backend.test_command.split()[0]} refused the worker job: {said}")


class JobWatch:
    """Replaces the jobs that are gone (``watch(left)``, called by the executor while no scan completes) and
    cancels every job it has seen at the end."""

    def __init__(self, cluster, backend: Backend, jobs: int, resubmit: int, logs: Path,
                 say: Callable[[str], None]):
        self.cluster, self.backend, self.jobs, self.limit = cluster, backend, jobs, resubmit
        self.logs, self.say, self.resubmitted = logs, say, 0
        self.seen: Set[str] = set()
        self.since: Dict[str, float] = {}  # jobs not submitted or lost, and since when

    def _ids(self) -> Dict[str, Optional[str]]:
        found = {name: getattr(job, "job_id", None) for name, job in list(self.cluster.workers.items())}
        self.seen.update(i for i in found.values() if i)
        return found

    def _queued(self) -> Optional[Set[str]]:
        if not self.backend.queue_command:
            return None
        try:
            r = subprocess.run(shlex.split(self.backend.queue_command), capture_output=True, text=True,
                               timeout=COMMAND_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return {line.split()[0].split(".")[0] for line in r.stdout.splitlines() if line.strip()} if r.returncode == 0 \
            else None

    def gone(self) -> Set[str]:
        """Names of the jobs that are gone: known to the batch system and no longer queued, or not submitted
        (or their workers lost) for :data:`GRACE_SECONDS`."""
        now, jobs, queued = time.monotonic(), self._ids(), self._queued()
        certain = {n for n, i in jobs.items() if i and queued is not None and i.split(".")[0] not in queued}
        unsure = {n for n in self.cluster.worker_spec if n not in jobs} | {n for n, i in jobs.items() if not i}
        self.since = {n: self.since.get(n, now) for n in unsure}
        return certain | {n for n, t in self.since.items() if now - t >= GRACE_SECONDS}

    def __call__(self, left: List[str]) -> None:
        confirmed = self.gone()
        if not confirmed:
            return
        for name in confirmed:
            self.cluster.worker_spec.pop(name, None)
            self.cluster.workers.pop(name, None)
            self.since.pop(name, None)
        room = min(self.limit - self.resubmitted, len(confirmed))
        if room > 0:
            self.resubmitted += room
            self.say(f"{len(confirmed)} worker job(s) gone: {room} submitted again ({self.resubmitted} of at most "
                     f"{self.limit})")
            self.cluster.scale(jobs=len(self.cluster.worker_spec) + room)
        elif not self.cluster.worker_spec:
            names = ", ".join(left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
            raise SciSegError(f"the worker jobs are gone ({len(self.seen)} submitted, {self.resubmitted} "
                              f"replaced, -slurm-resubmit {self.limit}); {len(left)} scans not done: {names}; "
                              f"job logs in {self.logs}; run the same command again to resume")

    def cancel_all(self) -> None:
        """Cancel every job this run submitted that may still be queued or running."""
        self._ids()
        command = getattr(self.cluster.job_cls, "cancel_command", None)
        if self.seen and command:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(shlex.split(command) + sorted(self.seen), capture_output=True,
                               timeout=COMMAND_SECONDS)


@contextlib.contextmanager
def open_jobqueue(spec: ClusterSpec, say: Callable[[str], None] = print) -> Iterator[Tuple[DaskExecutor, int]]:
    """``(executor, threads per worker)`` on ``spec.slurm.jobs`` jobs; every job is cancelled on exit."""
    backend, options = spec.backend, spec.slurm
    with contextlib.ExitStack() as stack:
        stack.enter_context(dask.config.set(read_cluster_config(options.config_file)))
        logs = logs_folder(spec)
        secrets = Path(tempfile.mkdtemp(prefix=".tls-", dir=logs))  # 0700, removed at the end
        stack.callback(shutil.rmtree, secrets, True)
        cluster = make_cluster(spec, logs, secrets)
        stack.callback(_remove_secrets, cluster, secrets)
        stack.callback(_close, cluster)
        check_submission(cluster, backend)
        kwargs = job_options(spec)
        processes, threads = kwargs["processes"], kwargs["cores"] // kwargs["processes"]
        limit = options.jobs if options.resubmit is None else options.resubmit
        watch = JobWatch(cluster, backend, options.jobs, limit, logs, say)
        stack.callback(watch.cancel_all)
        cluster.scale(jobs=options.jobs)
        from distributed import Client
        client = stack.enter_context(Client(cluster, timeout="30s"))
        say(f"{spec.system.upper()}: {options.jobs} jobs x {processes} workers x {threads} threads (workers join "
            f"as their jobs start; TLS with certificates made for this run; job logs in {logs})"
            + (f"; dashboard: {client.dashboard_link}" if spec.dashboard else ""))
        yield DaskExecutor(client, watch=watch), threads


def _close(cluster) -> None:
    """Close the cluster; a job that failed to start makes dask-jobqueue's close fail, which must not hide
    the batch's own outcome (the jobs are cancelled by :meth:`JobWatch.cancel_all` anyway)."""
    try:
        cluster.close(timeout=COMMAND_SECONDS)
    except Exception as exc:  # noqa: BLE001 - see above
        warn(f"closing the worker jobs: {type(exc).__name__}: {exc}")


def _remove_secrets(cluster, secrets: Path) -> None:
    """Delete the certificate files dask-jobqueue wrote for the workers (open temporary files it holds)."""
    for value in list(vars(cluster).values()):
        if str(getattr(value, "name", "")).startswith(str(secrets)) and hasattr(value, "close"):
            with contextlib.suppress(OSError):
                value.close()
