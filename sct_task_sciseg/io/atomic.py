"""One way to write a file so that it is never seen half-written.

The content goes to a temporary file in the target's own folder (same filesystem), is flushed and fsynced,
then renamed over the target with ``os.replace``; on any failure (Ctrl-C included) the temporary file is
removed and the target is untouched. Temporary names start with a dot and end in ``.tmp``, so a folder scan
for inputs (``*.nii.gz``) never takes one for an image.
"""
from __future__ import annotations

import glob
import os
import uuid
from pathlib import Path
from typing import Callable, List, Union

from ..errors import OutputError

Content = Union[bytes, str, Callable[[object], None]]


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (hidden, ending in ``.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def stale_temps(path: Union[str, Path]) -> List[Path]:
    """Temporary files of writes of ``path`` (only a process killed while writing leaves one behind)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def atomic_write(path: Union[str, Path], content: Content, mode: int = 0o644) -> Path:
    """Write ``content`` to ``path`` atomically: bytes, text (UTF-8), or a callable that writes into the
    binary file object it is given."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_writable(folder: Path) -> None:
    """Fail before any work when ``folder`` cannot receive outputs."""
    if not folder.exists():
        raise OutputError(f"{folder}: output folder does not exist")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output location is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: output folder is not writable")
