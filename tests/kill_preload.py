"""A `dask worker --preload` module for tests/test_cluster.py: the worker SIGKILLs itself (as a crash in native
code would) while it runs its second scan of a batch, once its first scan's result has been delivered.

    KILL_RECORD=/path/to/record dask worker ADDRESS --preload tests/kill_preload.py

The kill happens in the worker's task-transition hook, at the later of two events of its own: the second scan
starts executing (the hook runs before the scan's code), and the first scan's result is released (the client
has fetched it, so that scan stays this worker's and only the second one is redone). The killed scan's name is
written to ``KILL_RECORD``, created exclusively (``O_EXCL``) and fsynced before the kill: a worker whose record
already exists never kills itself, so one record means one kill. Without ``KILL_RECORD`` the preload fails (dask
logs the error) and installs nothing.
"""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from distributed import WorkerPlugin

RECORD_ENV = "KILL_RECORD"
#: A batch's task keys: ``sciseg-<input file name>-<run>-<index>`` (sct_task_sciseg.batch.cluster).
SCAN_KEY = re.compile(r"sciseg-(sub-\d+_T2w)\.nii\.gz-")


class KillOnSecondScan(WorkerPlugin):
    """Kills this worker while a scan executes once one of its earlier scans was delivered (see the module)."""

    name = "kill-on-second-scan"

    def __init__(self, record: Path):
        self.record = record
        self.delivered = 0
        self.executing: set[str] = set()

    def transition(self, key, start: str, finish: str, **kwargs) -> None:
        scan = SCAN_KEY.match(str(key))
        if scan is None:
            return
        if finish == "executing":
            self.executing.add(scan.group(1))
        elif start == "executing":
            self.executing.discard(scan.group(1))
        elif start == "memory" and finish in ("released", "forgotten"):
            self.delivered += 1
        if self.delivered and self.executing:
            self.kill(min(self.executing))

    def kill(self, scan: str) -> None:
        try:
            fd = os.open(self.record, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:  # killed once already: never again
            return
        try:
            os.write(fd, scan.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


async def dask_setup(worker) -> None:
    record = os.environ.get(RECORD_ENV)
    if not record:
        raise RuntimeError(f"{__file__}: set {RECORD_ENV} to the file that records the killed scan")
    await worker.plugin_add(KillOnSecondScan(Path(record)), name=KillOnSecondScan.name, catch_errors=False)
