"""The install lock of a task folder: one install at a time, across processes."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

from ..environment import get
from ..errors import InstallError


def lock_timeout() -> float:
    """Seconds an install waits for another install of the same task (``SCISEG_LOCK_TIMEOUT``)."""
    return float(get("SCISEG_LOCK_TIMEOUT"))


@contextlib.contextmanager
def task_lock(tdir: Path, say: Callable[[str], None]) -> Iterator[None]:
    """The task folder's install lock; says so when another install holds it, and gives up after
    :func:`lock_timeout` seconds."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(tdir / ".install.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        limit = lock_timeout()
        say(f"waiting for another install of this task to finish (lock {lock.lock_file}); giving up after "
            f"{limit:g} s")
        try:
            lock.acquire(timeout=limit)
        except Timeout:
            raise InstallError(f"{lock.lock_file}: another process has been installing this task for more than "
                               f"{limit:g} s; giving up (stop that process or retry later; SCISEG_LOCK_TIMEOUT "
                               "sets the wait)") from None
    try:
        yield
    finally:
        lock.release()
