"""Safe extraction of release zips: no member may escape the folder, be a link or a special file, and the
archive may not unpack to more than a cap, more than the free disk, or far more than its own size (zip bombs).
"""
from __future__ import annotations

import hashlib
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional

from ..environment import get
from ..errors import InstallError

MAX_RATIO = 50  # model files (float weights, JSON) deflate by 1.1–10×; a bomb by hundreds
RATIO_FLOOR = 16 << 20  # members smaller than this are not ratio-checked
DISK_MARGIN = 64 << 20


def max_unzipped() -> int:
    """Most bytes a release archive may unpack to (``SCISEG_MAX_UNZIPPED_MB``, default 8 GiB)."""
    return int(get("SCISEG_MAX_UNZIPPED_MB") * (1 << 20))


def html_problem(path: Path) -> Optional[str]:
    """Why ``path`` is an HTML page rather than a zip archive (naming its title), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"PK") or not (text.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))
                                      or (text.startswith(b"<") and b"<html" in text[:1024])):
        return None
    title = re.search(rb"<title[^>]*>(.*?)</title>", head, re.I | re.S)
    name = " ".join(title.group(1).decode("utf-8", "replace").split())[:80] if title else ""
    return (f"is an HTML page{f' ({name!r})' if name else ''}, not a zip archive: the URL gives a web page "
            "(a login, error or release page), not the release asset")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_sizes(infos: List[zipfile.ZipInfo], archive: Path, dest: Path) -> None:
    """Refuse, from the zip directory alone, an archive too big to unpack here."""
    total = sum(i.file_size for i in infos)
    cap = max_unzipped()
    if total > cap:
        raise InstallError(f"{archive}: would unpack to {total} bytes, more than the {cap} allowed "
                           "(SCISEG_MAX_UNZIPPED_MB); not extracted")
    for info in infos:
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise InstallError(f"{archive}: member {info.filename!r} would unpack from {info.compress_size} to "
                               f"{info.file_size} bytes (more than {MAX_RATIO}×: a zip bomb); not extracted")
    free = shutil.disk_usage(_existing(dest)).free
    if total + DISK_MARGIN > free:
        raise InstallError(f"{archive}: would unpack to {total} bytes, but {_existing(dest)} has only {free} "
                           "bytes free; not extracted")

def _check_member(info: zipfile.ZipInfo, archive: Path) -> None:
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise InstallError(f"{archive}: refusing absolute path member {name!r} (corrupt or malicious zip)")
    if ".." in path.parts:
        raise InstallError(f"{archive}: refusing member {name!r} that escapes the folder (zip-slip)")
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        raise InstallError(f"{archive}: refusing symbolic link member {name!r}")
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
        raise InstallError(f"{archive}: refusing special file member {name!r}")


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: Path) -> str:
    """Write one member, never more bytes than the zip directory declares; returns its sha256."""
    h, written = hashlib.sha256(), 0
    with zf.open(info) as src, open(target, "wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            written += len(block)
            if written > info.file_size:
                raise InstallError(f"{archive}: member {info.filename!r} holds more than the {info.file_size} "
                                   "bytes its directory entry declares; not extracted")
            h.update(block)
            out.write(block)
    return h.hexdigest()


def safe_extract(archive: Path, dest: Path) -> Dict[Path, str]:
    """Extract ``archive`` into ``dest``, refusing absolute, ``..``, link and special members.

    Every member's CRC is checked as it is read; returns the sha256 of every extracted file (by path).
    """
    hashes: Dict[Path, str] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_member(info, archive)
            _check_sizes(infos, archive, dest)
            for info in infos:
                target = dest.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                hashes[target] = _extract_member(zf, info, target, archive)
    except zipfile.BadZipFile as exc:
        html = html_problem(archive)
        if html:
            raise InstallError(f"{archive}: {html}") from exc
        raise InstallError(f"{archive}: corrupt or not a valid zip archive ({exc}); download it again") from exc
    except (zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise InstallError(f"{archive}: corrupt zip archive ({exc}); download it again") from exc
    return hashes
