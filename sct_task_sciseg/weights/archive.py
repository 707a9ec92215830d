"""Safe extraction of release zips: no member may escape the folder, be a link or a special file."""
from __future__ import annotations

import hashlib
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Dict

from ..errors import InstallError

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
            for info in infos:
                target = dest.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with zf.open(info) as src, open(target, "wb") as out:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
                hashes[target] = h.hexdigest()
    except zipfile.BadZipFile as exc:
        raise InstallError(f"{archive}: corrupt or not a valid zip archive ({exc}); download it again") from exc
    except (zipfile.LargeZipFile, EOFError, zlib.error) as exc:
        raise InstallError(f"{archive}: corrupt zip archive ({exc}); download it again") from exc
    return hashes
