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
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import unquote, urlparse

from .. import __version__
from ..errors import Hint, InstallError, ModelError
from ..io.atomic import atomic_write
from ..io.hashing import sha256_file, sha256_tree
from ..tasks import Release, Task, resolve_task
from .archive import html_problem, safe_extract
from .download import download
from .locations import INSTALL_RECORD, read_only_note, redact, release_base_urls, task_dir
from .lock import task_lock
from .model_folder import fold_checkpoints, find_model_folder, model_folder_name, validate_model_folder
from .trust import TRUST_FILE, TrustRecord, mismatch, now

MARKER = INSTALL_RECORD

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
        model_folder=release_dir / marker["model_folder"], url=redact(marker.get("url", "")),
        sha256=marker["sha256"], size=int(marker.get("size", 0)), installed_at=marker.get("installed_at", ""),
        custom=bool(marker.get("custom", False)),
    )


def find_installed(task: Task, tag: Optional[str] = None, models_dir: Optional[PathLike] = None,
                   full_check: bool = False) -> Optional[InstalledModel]:
    """The installed release ``tag`` (default release when None), verified against its marker.

    Returns None when it is not installed. Raises :class:`ModelError` when it is installed but a file is
    missing or changed since install. Files whose size and mtime are unchanged are trusted unless
    ``full_check``; the others are re-hashed."""
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


def _read_marker(marker_path: Path) -> dict:
    try:
        marker = json.loads(marker_path.read_text())
        if not isinstance(marker.get("files"), dict):
            raise ValueError("no file table")
        return marker
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"{marker_path}: unreadable install marker ({exc})") from exc


def recorded_checkpoints(model_folder: Path, names: Sequence[str],
                         folds: Optional[Sequence[int]] = None) -> List[Tuple[Path, Optional[str]]]:
    """(checkpoint, recorded sha256) of every fold to load from ``model_folder``.

    In an installed release (its marker beside the model folder) only recorded files are loaded, each with
    the sha256 of the record, to be compared as it is read: a checkpoint that the record does not list (an
    added ``fold_9/``) is refused, and so is a recorded one that is missing. A model folder outside any
    install has no record: its ``fold_*`` checkpoints come without a hash.
    """
    marker_path = model_folder.parent / MARKER
    if not marker_path.is_file():
        return [(p, None) for p in fold_checkpoints(model_folder, names, folds)]
    marker = _read_marker(marker_path)
    hint = Hint("reinstall", {"task": marker.get("task", "?"), "tag": marker.get("tag", "?")})
    if marker.get("model_folder") != model_folder.name:
        raise ModelError(f"{model_folder}: not the model folder recorded in {marker_path}", hint)
    recorded: Dict[str, str] = {}  # fold → its checkpoint (first of ``names`` the record lists)
    for rel in marker["files"]:
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] == model_folder.name and parts[1].startswith("fold_") \
                and parts[2] in names:
            best = recorded.get(parts[1])
            if best is None or names.index(parts[2]) < names.index(best):
                recorded[parts[1]] = parts[2]
    on_disk = {p.parent.name: p for name in reversed(names) for p in model_folder.glob(f"fold_*/{name}")}
    wanted = [f"fold_{f}" for f in folds] if folds else sorted(set(recorded) | set(on_disk))
    out = []
    for fold in wanted:
        if fold not in recorded:
            path = on_disk.get(fold, model_folder / fold / names[0])
            what = "not part of" if path.is_file() else "missing from"
            raise ModelError(f"{path}: {what} release {marker.get('tag')} as installed (its install record "
                             f"{MARKER} does not list it); not loaded", hint)
        path = model_folder / fold / recorded[fold]
        if not path.is_file():
            raise ModelError(f"{path}: model file missing", hint)
        out.append((path, marker["files"][path.relative_to(model_folder.parent).as_posix()][2]))
    if not out:
        raise ModelError(f"{model_folder}: no {' or '.join(names)} recorded in {marker_path}", hint)
    return out


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


def install(task: Union[Task, str], tag: Optional[str] = None, *, models_dir: Optional[PathLike] = None,
            source: Optional[str] = None, force: bool = False, quiet: bool = False,
            log: Optional[Callable[[str], None]] = None) -> InstalledModel:
    """Install release ``tag`` of ``task`` (a :class:`Task`, a name, or ``"name@tag"``; default release when
    no tag) and return it.

    ``source`` replaces the release URL: an http(s)/file URL, a local zip or a local model folder (air-gapped
    installs); it is installed under ``tag``. Already installed and intact → returned with no network access.
    """
    say = log or (lambda m: None if quiet else _stderr(m))
    task, tag = resolve_task(task, tag)
    release = _release_for(task, tag, source)
    tdir = task_dir(task, models_dir)
    try:
        tdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"{tdir}: cannot create the models folder ({exc.strerror})",
                           Hint("models-dir")) from exc
    with task_lock(tdir, say):
        _cleanup_stale(tdir)
        if not force:
            try:
                existing = find_installed(task, release.tag, models_dir)
            except ModelError as exc:
                say(f"{exc.message}; reinstalling")
                existing = None
            if existing is not None:
                return existing
        note = read_only_note(tdir.parent) if models_dir is None else None
        if note:
            say(note)
        return _Installer(task, release, tdir, source, quiet, say).run()


class _Installer:
    """One install under the task folder's lock: fetch → verify → extract into staging → swap in."""

    def __init__(self, task: Task, release: Release, tdir: Path, source: Optional[str], quiet: bool,
                 say: Callable[[str], None]):
        self.task, self.release, self.tdir, self.source, self.quiet, self.say = task, release, tdir, source, quiet, say
        self.trust = TrustRecord(tdir / TRUST_FILE)
        self.custom = source is not None
        # every source of a release with a pinned or recorded hash must have that hash (a different model
        # goes under its own tag); custom sources never become the trusted record
        self.expected = self.trust.expected(release)
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
        if self.expected is not None:
            raise InstallError(f"{local}: a folder cannot be checked against the sha256 of release "
                               f"{self.release.tag} ({self.expected['origin']}); {self._own_tag()}")
        model_src = find_model_folder(local)
        folder_name = model_folder_name(model_src)
        shutil.copytree(model_src, self.staging / folder_name)
        validate_model_folder(self.staging / folder_name, self.task.dataset_labels,
                              self.task.predictor.checkpoints, str(local))
        return folder_name, sha256_tree(self.staging / folder_name), 0, local.resolve().as_uri(), {}

    def _fetch(self, local: Optional[Path]):
        """(archive path, URL, sha256, size) of the release archive, downloaded when not local."""
        if local is not None:
            if not local.is_file():
                raise InstallError(f"{local}: no such file or folder")
            return local, local.resolve().as_uri(), sha256_file(local), local.stat().st_size
        urls = [self.source] if self.source else [self.release.url(b) for b in release_base_urls(self.task)]
        self.say(f"Downloading {self.task.name} release {self.release.tag} from {redact(urls[0])}")
        got = download(urls, self.tdir / ".downloads" / self.release.tag / self.release.asset,
                       expected_size=(self.expected or {}).get("size"), quiet=self.quiet, log=self.say,
                       verify=self._problem, size_origin=(self.expected or {}).get("origin", ""),
                       hint=Hint("offline-install", {"task": self.task.name, "tag": self.release.tag,
                                                      "asset": self.release.asset}))
        self.downloaded = got.path
        return got.path, got.url, got.sha256, got.size

    def _unpack_archive(self, local: Optional[Path]):
        archive, url, digest, size = self._fetch(local)
        problem = html_problem(archive) or self._problem(digest, size)
        if problem:
            raise InstallError(f"{url}: {problem}" + ("" if self.custom else "; pass the right file"))
        extracted = safe_extract(archive, self.staging / "_unpacked")
        model_src = find_model_folder(self.staging / "_unpacked")
        validate_model_folder(model_src, self.task.dataset_labels, self.task.predictor.checkpoints, url)
        folder_name = model_folder_name(model_src)
        os.replace(model_src, self.staging / folder_name)  # also right when the zip has no root folder
        shutil.rmtree(self.staging / "_unpacked", ignore_errors=True)
        known = {self.staging / folder_name / p.relative_to(model_src): d
                 for p, d in extracted.items() if model_src in p.parents}
        return folder_name, digest, size, url, known

    def _problem(self, digest: str, size: int) -> Optional[str]:
        """Why a file with this sha256/size is not the release, or None."""
        problem = mismatch(self.expected, digest, size, self.release)
        return f"{problem}; {self._own_tag()}" if problem and self.custom else problem

    def _own_tag(self) -> str:
        """How to install a different model than the release with a pinned/recorded hash."""
        how = f"install it under its own tag (-task {self.task.name}@<tag> -custom-url …)"
        if self.release.sha256:
            return f"a different model cannot replace release {self.release.tag}: {how}"
        return (f"a different model does not silently replace release {self.release.tag}: {how}, or remove "
                f"{self.release.tag} from {self.trust.path} to trust another file for it")

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
