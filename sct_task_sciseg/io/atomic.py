"""One way to write files so that none is ever seen half-written, and a set of files either all or none.

The content goes to a temporary file in the target's own folder (same filesystem), is flushed and fsynced,
then renamed over the target with ``os.replace``; on any failure (Ctrl-C included, and SIGTERM under the
``sciseg`` command, which raises the same exception for it) the temporary file is removed and the target is
untouched. :func:`atomic_write_all` does this for several files that belong together (two masks and their
sidecars): every temporary file is written first, then all are renamed; if a rename fails, the files already
renamed get their previous content back (or are removed when there was none). Temporary names start with a
dot and end in ``.tmp`` and folder scans for inputs skip hidden names
(:func:`sct_task_sciseg.io.naming.is_hidden`), so a leftover temporary file is never taken for an image.
"""
from __future__ import annotations

import glob
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

from ..errors import OutputError

Content = Union[bytes, str, Callable[[object], None]]
TEMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path`` (hidden, ending in ``.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def stale_temps(path: Union[str, Path]) -> List[Path]:
    """Temporary files of writes of ``path`` (only a process killed while writing leaves one behind)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"))


def _write_temp(path: Path, content: Content, mode: int) -> Path:
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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: Union[str, Path], content: Content, mode: int = 0o644) -> Path:
    """Write ``content`` to ``path`` atomically: bytes, text (UTF-8), or a callable that writes into the
    binary file object it is given."""
    return atomic_write_all([(Path(path), content)], mode)[0]


def _backup(target: Path) -> Optional[Path]:
    """A hidden copy of ``target``'s current content (a hard link where the filesystem has them), or None
    when there is no file there."""
    backup = temp_path(target)
    if target.is_symlink():
        os.symlink(os.readlink(target), backup)
    elif not target.is_file():
        return None
    else:
        try:
            os.link(target, backup)
        except OSError:
            shutil.copy2(target, backup)
    return backup


def atomic_write_all(files: Sequence[Tuple[Union[str, Path], Content]], mode: int = 0o644) -> List[Path]:
    """Write every ``(path, content)`` or none: after any failure each target holds what it held before."""
    targets = [Path(p) for p, _ in files]
    temps: List[Path] = []
    done: List[Tuple[Path, Optional[Path]]] = []  # (target, backup of its previous content)
    backups: List[Path] = []
    try:
        for target, (_, content) in zip(targets, files):
            temps.append(_write_temp(target, content, mode))
        for target, tmp in zip(targets, temps):
            backup = _backup(target)
            if backup is not None:
                backups.append(backup)
            os.replace(tmp, target)
            done.append((target, backup))
    except BaseException:
        _roll_back(done)
        for p in temps + backups:
            p.unlink(missing_ok=True)
        raise
    for backup in backups:
        backup.unlink(missing_ok=True)
    return targets


def _roll_back(done: Sequence[Tuple[Path, Optional[Path]]]) -> None:
    """Give the targets already replaced their previous content back (best effort, newest first)."""
    for target, backup in reversed(done):
        try:
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink(missing_ok=True)
        except OSError:
            pass


def check_writable(folder: Path) -> None:
    """Fail before any work when ``folder`` cannot receive outputs."""
    if not folder.exists():
        raise OutputError(f"{folder}: output folder does not exist")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output location is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: output folder is not writable")
