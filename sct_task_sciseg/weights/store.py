"""Installed model releases: verified, atomic, resumable, offline-able.

Layout: ``<models dir>/<task name>/<tag>/<nnUNetTrainer…__3d_fullres>/`` plus a marker ``sciseg_install.json``
written last (tag, URL, sha256, size, time, and the size/hash of every model file). A release folder without
a marker is incomplete and never used. Installs run under a file lock, extract into a staging folder on the
same filesystem and swap it into place with ``os.replace``, so the previous release stays usable until the
new one is complete and a killed installer leaves nothing half-installed.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union
from urllib.parse import unquote, urlparse

from .. import __version__
from ..errors import Hint, InstallError, ModelError
from ..io.atomic import atomic_write
from ..io.hashing import sha256_file, sha256_tree
from ..tasks import Release, Task
from .archive import safe_extract
from .download import download
from .locations import ENV_MODELS_DIR, release_base_urls, task_dir
from .model_folder import find_model_folder, model_folder_name, validate_model_folder
from .trust import TRUST_FILE, TrustRecord, mismatch, now

MARKER = "sciseg_install.json"

PathLike = Union[str, Path]


@dataclass(frozen=True)
class InstalledModel:
    task_name: str
    tag: str
    path: Path  # the release folder
    model_folder: Path  # the nnUNetTrainer…__3d_fullres folder
    url: str
    sha256: str
    size: int
    installed_at: str
    custom: bool = False


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _reinstall(task: Task, tag: str) -> Hint:
    return Hint("reinstall", {"task": task.name, "tag": tag})


def _file_table(release_dir: Path, known: Optional[Dict[Path, str]] = None) -> Dict[str, list]:
    """relative path → [size, mtime_ns, sha256] of every model file (hashes reused from extraction)."""
    known = known or {}
    table = {}
    for p in sorted(release_dir.rglob("*")):
        if p.is_file() and p.name != MARKER:
            st = p.stat()
            digest = known.get(p) or sha256_file(p)
            table[p.relative_to(release_dir).as_posix()] = [st.st_size, st.st_mtime_ns, digest]
    return table


def _marker_to_model(release_dir: Path, marker: dict) -> InstalledModel:
    return InstalledModel(
        task_name=marker["task"], tag=marker["tag"], path=release_dir,
        model_folder=release_dir / marker["model_folder"], url=marker.get("url", ""),
        sha256=marker["sha256"], size=int(marker.get("size", 0)), installed_at=marker.get("installed_at", ""),
        custom=bool(marker.get("custom", False)),
    )


def find_installed(task: Task, tag: Optional[str] = None, models_dir: Optional[PathLike] = None,
                   full_check: bool = False) -> Optional[InstalledModel]:
    """The installed release ``tag`` (default release when None), verified against its marker.

    Returns None when it is not installed. Raises :class:`ModelError` when it is installed but a file is
    missing or changed since install. Files whose size and mtime are unchanged are trusted unless
    ``full_check``; the others are re-hashed.
    """
    tag = task.release(tag).tag if tag is None or tag in {r.tag for r in task.releases} else tag
    release_dir = task_dir(task, models_dir) / tag
    marker_path = release_dir / MARKER
    if not marker_path.is_file():
        return None
    try:
        marker = json.loads(marker_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{marker_path}: unreadable install marker ({exc})", _reinstall(task, tag)) from exc
    for rel, (size, mtime_ns, digest) in marker.get("files", {}).items():
        p = release_dir / rel
        try:
            st = p.stat()
        except OSError:
            raise ModelError(f"{p}: model file missing", _reinstall(task, tag)) from None
        if st.st_size != size or ((full_check or st.st_mtime_ns != mtime_ns) and sha256_file(p) != digest):
            raise ModelError(f"{p}: model file changed since install (sha256 differs)", _reinstall(task, tag))
    return _marker_to_model(release_dir, marker)


def list_installed(task: Task, models_dir: Optional[PathLike] = None) -> List[str]:
    d = task_dir(task, models_dir)
    return sorted(p.parent.name for p in d.glob(f"*/{MARKER}")) if d.is_dir() else []


def _local_path(source: str) -> Optional[Path]:
    if source.startswith("file://"):
        return Path(unquote(urlparse(source).path))
    if "://" in source:
        return None
    return Path(source).expanduser()


def _cleanup_stale(tdir: Path) -> None:
    for p in list(tdir.glob(".staging-*")) + list(tdir.glob(".old-*")):
        shutil.rmtree(p, ignore_errors=True)


def _release_for(task: Task, tag: Optional[str], source: Optional[str]) -> Release:
    if tag is not None and tag not in {r.tag for r in task.releases} and source is not None:
        return Release(tag, Path(urlparse(source).path).name or tag, "custom release")
    return task.release(tag)  # prefix match, default release, or KeyError naming the known tags


def install(task: Task, tag: Optional[str] = None, *, models_dir: Optional[PathLike] = None,
            source: Optional[str] = None, force: bool = False, quiet: bool = False,
            log: Optional[Callable[[str], None]] = None) -> InstalledModel:
    """Install release ``tag`` of ``task`` (default release when None) and return it.

    ``source`` replaces the release URL: an http(s)/file URL, a local zip or a local model folder (air-gapped
    installs); it is installed under ``tag``. Already installed and intact → returned with no network access.
    """
    from filelock import FileLock

    say = log or (lambda m: None if quiet else _stderr(m))
    release = _release_for(task, tag, source)
    tdir = task_dir(task, models_dir)
    try:
        tdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"{tdir}: cannot create the models folder ({exc.strerror})",
                           Hint("models-dir")) from exc
    with FileLock(str(tdir / ".install.lock")):
        _cleanup_stale(tdir)
        if not force:
            try:
                existing = find_installed(task, release.tag, models_dir)
            except ModelError as exc:
                say(f"{exc.message}; reinstalling")
                existing = None
            if existing is not None:
                return existing
        return _Installer(task, release, tdir, source, quiet, say).run()


class _Installer:
    """One install under the task folder's lock: fetch → verify → extract into staging → swap in."""

    def __init__(self, task: Task, release: Release, tdir: Path, source: Optional[str], quiet: bool,
                 say: Callable[[str], None]):
        self.task, self.release, self.tdir, self.source, self.quiet, self.say = task, release, tdir, source, quiet, say
        self.trust = TrustRecord(tdir / TRUST_FILE)
        self.custom = source is not None
        # custom sources are checked against a pinned hash only, and never become the trusted record
        self.expected = self.trust.expected(release) if not self.custom or release.sha256 else None
        self.staging = tdir / f".staging-{release.tag}-{uuid.uuid4().hex[:8]}"
        self.downloaded: Optional[Path] = None

    def run(self) -> InstalledModel:
        self.staging.mkdir()
        try:
            local = _local_path(self.source) if self.source else \
                (self.release.embedded_path() if self.release.embedded else None)
            if local is not None and local.is_dir():
                folder_name, digest, size, url, known = self._copy_folder(local)
            else:
                folder_name, digest, size, url, known = self._unpack_archive(local)
            marker = {
                "task": self.task.name, "tag": self.release.tag, "asset": self.release.asset, "url": url,
                "sha256": digest, "size": size, "installed_at": now(), "custom": self.custom,
                "model_folder": folder_name, "installer": f"sct_task_sciseg {__version__}",
                "files": _file_table(self.staging, known),
            }
            atomic_write(self.staging / MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")
            target = self._swap_in()
            self._record_trust(digest, size, url)
            if self.downloaded is not None:
                self.downloaded.unlink(missing_ok=True)
            self.say(f"Installed {self.task.name} {self.release.tag} in {target}")
            return _marker_to_model(target, marker)
        except InstallError:
            if self.downloaded is not None:
                self.downloaded.unlink(missing_ok=True)
            raise
        except OSError as exc:
            raise InstallError(f"{self.tdir}: install failed ({exc}); the previous model, if any, is "
                               "untouched") from exc
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _copy_folder(self, local: Path):
        model_src = find_model_folder(local)
        validate_model_folder(model_src, self.task.dataset_labels, self.task.predictor.checkpoints, str(local))
        folder_name = model_folder_name(model_src)
        shutil.copytree(model_src, self.staging / folder_name)
        self.expected = None  # a folder has no release hash to compare with
        return folder_name, sha256_tree(self.staging / folder_name), 0, local.resolve().as_uri(), {}

    def _fetch(self, local: Optional[Path]):
        """(archive path, URL, sha256, size) of the release archive, downloaded when not local."""
        if local is not None:
            if not local.is_file():
                raise InstallError(f"{local}: no such file or folder")
            return local, local.resolve().as_uri(), sha256_file(local), local.stat().st_size
        urls = [self.source] if self.source else [self.release.url(b) for b in release_base_urls(self.task)]
        self.say(f"Downloading {self.task.name} release {self.release.tag} from {urls[0]}")
        got = download(urls, self.tdir / ".downloads" / self.release.tag / self.release.asset,
                       expected_size=(self.expected or {}).get("size"), quiet=self.quiet, log=self.say,
                       verify=lambda d, n: mismatch(self.expected, d, n, self.release),
                       hint=Hint("offline-install", {"task": self.task.name, "tag": self.release.tag}))
        self.downloaded = got.path
        return got.path, got.url, got.sha256, got.size

    def _unpack_archive(self, local: Optional[Path]):
        archive, url, digest, size = self._fetch(local)
        problem = mismatch(self.expected, digest, size, self.release)
        if problem:
            raise InstallError(f"{url}: {problem}: pass the right file")
        extracted = safe_extract(archive, self.staging / "_unpacked")
        model_src = find_model_folder(self.staging / "_unpacked")
        validate_model_folder(model_src, self.task.dataset_labels, self.task.predictor.checkpoints, url)
        folder_name = model_folder_name(model_src)
        os.replace(model_src, self.staging / folder_name)  # also right when the zip has no root folder
        shutil.rmtree(self.staging / "_unpacked", ignore_errors=True)
        known = {self.staging / folder_name / p.relative_to(model_src): d
                 for p, d in extracted.items() if model_src in p.parents}
        return folder_name, digest, size, url, known

    def _swap_in(self) -> Path:
        target = self.tdir / self.release.tag
        old = None
        if target.exists():
            old = self.tdir / f".old-{self.release.tag}-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        os.replace(self.staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return target

    def _record_trust(self, digest: str, size: int, url: str) -> None:
        if self.expected is None and not self.custom and not self.release.sha256:
            self.trust.record(self.release, digest, size, url)
            self.say(f"note: release {self.release.tag} publishes no checksum; recorded sha256 {digest} at "
                     f"first install ({self.tdir / TRUST_FILE}); later installs of {self.release.tag} are "
                     "verified against it")


def ensure_installed(task: Task, tag: Optional[str] = None, models_dir: Optional[PathLike] = None,
                     quiet: bool = False) -> InstalledModel:
    """The installed model, installing it first (with a message) when missing or damaged."""
    try:
        found = find_installed(task, tag, models_dir)
    except ModelError as exc:
        if not quiet:
            _stderr(f"{exc.message}; reinstalling")
        return install(task, tag, models_dir=models_dir, force=True, quiet=quiet)
    if found is not None:
        return found
    if not quiet:
        _stderr(f"Model {task.name}@{task.release(tag).tag} is not installed yet: installing it now")
    return install(task, tag, models_dir=models_dir, quiet=quiet)
