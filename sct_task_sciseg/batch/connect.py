"""Dask clusters a batch runs on: one started on this machine (``local``) or a running scheduler at an address
(``tcp://``, ``tls://``); batch systems are in :mod:`.jobqueue`. Who can get in:

- ``local``: the scheduler and its workers listen on 127.0.0.1 only; the dashboard is off unless asked for,
  and then served on 127.0.0.1 unless another address is given.
- ``tls://HOST:PORT``: the client authenticates with the user's certificates, read from the Dask
  configuration (``distributed.comm.tls.*``, also from ``-cluster-config``).
- ``tcp://HOST:PORT`` on an address other than loopback: unencrypted and unauthenticated; one warning line
  says so. Workers of such a scheduler belong to the user: their processes are not tuned.
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple
from urllib.parse import urlsplit

import dask
from distributed import Client, LocalCluster

from ..errors import SciSegError
from ..log import logger
from .backends import ClusterSpec
from .cluster import DaskExecutor, uniform_threads
from ..machine import cores as machine_cores, total_memory as machine_memory
from .sizing import capped_workers, cluster_shape

GREETING_SECONDS = 5.0  # a Dask server sends its handshake at once; an HTTP server waits for a request
DEFAULT_DASHBOARD = "127.0.0.1:8787"


def warn(line: str) -> None:
    """One warning line through the package's logger (the command prints it as ``warning: …``)."""
    logger.warning(line)


def _flatten(tree: dict, prefix: str = "") -> Dict[str, object]:
    """Leaves only: an empty mapping is no value (``jobqueue: {}`` must not wipe dask-jobqueue's defaults)."""
    out: Dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_cluster_config(path: Optional[str]) -> Dict[str, object]:
    """Every value of a Dask configuration YAML (the format of ``~/.config/dask/jobqueue.yaml``), flattened
    for ``dask.config.set``: set over Dask's own configuration, it overrides only the keys the file gives."""
    if not path:
        return {}
    import yaml
    try:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SciSegError(f"{path}: cannot read the cluster configuration ({exc})") from None
    if not isinstance(tree, dict) or not isinstance(tree.get("jobqueue", {}), dict):
        raise SciSegError(f"{path}: not a Dask configuration (expected a mapping such as jobqueue: slurm: ...)")
    return _flatten(tree)


def dashboard(spec: ClusterSpec) -> Optional[str]:
    """Where to serve the dashboard: None (off), or the address asked for (a bare port: on loopback)."""
    if not spec.dashboard:
        return None
    return f"127.0.0.1{spec.dashboard}" if spec.dashboard.startswith(":") else spec.dashboard


def local_threads(spec: ClusterSpec) -> int:
    return cluster_shape(machine_cores(), machine_memory(), spec.workers, spec.threads)[1]


@contextlib.contextmanager
def open_local(spec: ClusterSpec, say: Callable[[str], None] = print) -> Iterator[Tuple[DaskExecutor, int]]:
    """Worker processes on this machine, all on 127.0.0.1 (logs from ERROR up: a worker slow to exit at the
    end is killed, which dask reports as a warning)."""
    cores, memory = machine_cores(), machine_memory()
    workers, threads = cluster_shape(cores, memory, spec.workers, spec.threads)
    if spec.workers:
        workers, note = capped_workers(workers, cores, memory, "this machine")
        if note:
            warn(note)
    with contextlib.ExitStack() as stack:
        stack.enter_context(dask.config.set(read_cluster_config(spec.slurm.config_file)))
        cluster = stack.enter_context(LocalCluster(
            n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
            dashboard_address=dashboard(spec), silence_logs=logging.ERROR))
        client = stack.enter_context(Client(cluster, timeout="30s"))
        say_where(client, f"local cluster: {workers} workers x {threads} threads", say, bool(spec.dashboard))
        yield DaskExecutor(client), threads


def say_where(client: Client, where: str, say: Callable[[str], None], served: bool = True) -> None:
    """``where`` and the dashboard's address (``served``: when one is served; every scheduler has HTTP routes)."""
    link = client.dashboard_link if served else None
    say(f"{where}; dashboard: {link}" if link else f"{where}; no dashboard (-dashboard to serve one)")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_greets(address: str, seconds: float = GREETING_SECONDS) -> None:
    """Raise one line unless a Dask server answers at ``tcp://HOST:PORT``: it sends its handshake as soon as a
    connection opens, where an HTTP server (the dashboard's port, say) waits for a request forever."""
    parts = urlsplit(address)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=seconds) as sock:
            sock.settimeout(seconds)
            first = sock.recv(8)
    except socket.timeout:
        raise SciSegError(f"-scheduler {address}: the port accepts connections but no Dask scheduler answered "
                          f"within {seconds:.0f} s (an HTTP port, such as the dashboard's?)") from None
    except (OSError, TypeError, ValueError) as exc:
        raise SciSegError(f"-scheduler {address}: cannot reach the scheduler ({exc})") from None
    if not first:
        raise SciSegError(f"-scheduler {address}: the connection was closed without a Dask handshake")


def _security(spec: ClusterSpec):
    from distributed.security import Security
    security = Security()  # distributed.comm.tls.* of the configuration (and -cluster-config)
    if not (security.tls_ca_file and security.tls_client_cert):
        raise SciSegError(f"-scheduler {spec.scheduler}: give the scheduler's CA and your client certificate "
                          "(distributed.comm.tls.ca-file, .client.cert, .client.key in -cluster-config)")
    return security


def plain_tcp_exposure(address: str) -> Optional[str]:
    """What a plain ``tcp://`` scheduler off loopback exposes, in one line (None on loopback)."""
    host = urlsplit(address).hostname or ""
    if _is_loopback(host):
        return None
    return (f"-scheduler {address} is unencrypted and unauthenticated: anyone who can reach {host} can run code "
            "as the workers' user and read the scans; use tls:// with certificates")


@contextlib.contextmanager
def open_address(spec: ClusterSpec, say: Callable[[str], None] = print) -> Iterator[Tuple[DaskExecutor, Optional[int]]]:
    """A running scheduler at ``tcp://`` or ``tls://HOST:PORT``; its workers are the user's (not tuned)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(dask.config.set(read_cluster_config(spec.slurm.config_file)))
        if spec.system == "tcp":
            exposure = plain_tcp_exposure(spec.scheduler)
            if exposure:
                warn(exposure)
            check_greets(spec.scheduler)
            security = None
        else:
            security = _security(spec)
        try:
            client = stack.enter_context(Client(spec.scheduler, timeout="30s", security=security))
        except (OSError, TimeoutError) as exc:
            raise SciSegError(f"-scheduler {spec.scheduler}: cannot reach the scheduler ({exc})") from None
        threads = spec.threads or uniform_threads(client)
        say_where(client, f"scheduler {spec.scheduler}: {len(client.nthreads())} workers", say)
        yield DaskExecutor(client, tune=False), threads
