"""An error that is not a :class:`~sct_task_sciseg.errors.SciSegError` is a bug: the command says so in one
line and keeps the traceback in a file for the bug report."""
from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path

from .. import __version__


def crash_folder() -> Path:
    """Where tracebacks of internal errors go: ``<temp>/sct_task_sciseg-logs``."""
    return Path(tempfile.gettempdir()) / "sct_task_sciseg-logs"


def internal_error(exc: BaseException) -> str:
    """Write ``exc``'s traceback to a new file under :func:`crash_folder`; the one line saying where."""
    text = f"sct_task_sciseg {__version__}\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    where = "not kept (no writable temporary folder)"
    try:
        folder = crash_folder()
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=time.strftime("crash-%Y%m%d-%H%M%S-"), suffix=".txt", dir=folder)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        where = f"traceback in {name}"
    except OSError:
        pass
    return (f"internal error {type(exc).__name__}: {exc} (a bug in sct_task_sciseg, not in your input; "
            f"{where}; please report it with that file)")
