"""Install versioned model weights: verified, atomic, resumable, offline-able.

Layout: ``<models dir>/<task name>/<tag>/<nnUNetTrainer…__3d_fullres>/`` plus a marker ``sciseg_install.json``
written last (tag, URL, sha256, size, time, and the size/hash of every model file). A release folder without
a marker is incomplete and never used. Installs run under a file lock, extract into a staging folder on the
same filesystem and swap it into place with ``os.replace``, so the previous release stays usable until the
new one is complete and a killed installer leaves nothing half-installed.
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import importlib.util
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union
from urllib.parse import unquote, urlparse

from . import __version__
from .archive import MODEL_FOLDER_GLOB, find_model_folder, safe_extract, validate_model_folder
from .download import download, sha256_file
from .errors import InstallError, ModelError
from .task import Release, Task

MARKER = "sciseg_install.json"
TRUST_FILE = "trusted_sha256.json"
ENV_MODELS_DIR = "SCISEG_MODELS_DIR"
ENV_RELEASE_URL = "SCISEG_RELEASE_URL"

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

    @property
    def dataset_json(self) -> dict:
        return json.loads((self.model_folder / "dataset.json").read_text())


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def sct_data_dir() -> Optional[Path]:
    """SCT's ``data/deepseg_models`` when SCT is importable (found without importing it), else None."""
    try:  # the SCT this Python would import (what SCT itself uses), else $SCT_DIR
        spec = importlib.util.find_spec("spinalcordtoolbox")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        root = str(Path(spec.origin).resolve().parent.parent)
    elif os.environ.get("SCT_DIR"):
        root = os.environ["SCT_DIR"]
    else:
        return None
    return Path(root) / "data" / "deepseg_models"


def resolve_models_dir(explicit: Optional[PathLike] = None) -> Path:
    """explicit argument > ``$SCISEG_MODELS_DIR`` > SCT's data/deepseg_models > platformdirs user data dir."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_MODELS_DIR):
        return Path(os.environ[ENV_MODELS_DIR]).expanduser()
    sct = sct_data_dir()
    if sct is not None and sct.parent.is_dir():
        return sct
    import platformdirs
    return Path(platformdirs.user_data_dir("sct_task_sciseg", appauthor=False)) / "models"


def release_base_urls(task: Task) -> List[str]:
    """``$SCISEG_RELEASE_URL`` (one or more base URLs, comma/space separated) replaces upstream."""
    env = os.environ.get(ENV_RELEASE_URL, "").replace(",", " ").split()
    return env or [task.base_url]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


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


def _tree_sha256(folder: Path) -> str:
    import hashlib
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def model_folder_name(model_src: Path) -> str:
    """The installed name of a model folder: nnU-Net's ``Trainer__Plans__configuration`` form, which SCT
    looks for; a folder named otherwise (or files at a zip's root) becomes ``nnUNetTrainer__<plans>__3d_fullres``."""
    if fnmatch.fnmatch(model_src.name, MODEL_FOLDER_GLOB):
        return model_src.name
    try:
        plans_name = json.loads((model_src / "plans.json").read_text()).get("plans_name", "nnUNetPlans")
    except (OSError, ValueError):
        plans_name = "nnUNetPlans"
    return f"nnUNetTrainer__{plans_name}__3d_fullres"


def task_dir(task: Task, models_dir: Optional[PathLike] = None) -> Path:
    return resolve_models_dir(models_dir) / task.name


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
        raise ModelError(f"{marker_path}: unreadable install marker ({exc}); reinstall with "
                         f"`sciseg -install-task {task.name}@{tag} -force`") from exc
    for rel, (size, mtime_ns, digest) in marker.get("files", {}).items():
        p = release_dir / rel
        try:
            st = p.stat()
        except OSError:
            raise ModelError(f"{p}: model file missing; reinstall with "
                             f"`sciseg -install-task {task.name}@{tag} -force`") from None
        if st.st_size != size or ((full_check or st.st_mtime_ns != mtime_ns) and sha256_file(p) != digest):
            raise ModelError(f"{p}: model file changed since install (sha256 differs); reinstall with "
                             f"`sciseg -install-task {task.name}@{tag} -force`")
    return _marker_to_model(release_dir, marker)


def list_installed(task: Task, models_dir: Optional[PathLike] = None) -> List[str]:
    d = task_dir(task, models_dir)
    return sorted(p.parent.name for p in d.glob(f"*/{MARKER}")) if d.is_dir() else []


class _Trust:
    """Trust-on-first-use record of sha256/size for releases whose hash is not pinned in the task."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def expected(self, release: Release) -> Optional[dict]:
        if release.sha256:
            return {"sha256": release.sha256.lower(), "size": release.size, "origin": "pinned in the task"}
        rec = self.data.get(release.tag)
        if rec and rec.get("asset") == release.asset:
            return {"sha256": rec["sha256"], "size": rec.get("size"),
                    "origin": f"recorded at first install on {rec.get('recorded_at', '?')}"}
        return None

    def record(self, release: Release, sha256: str, size: int, url: str) -> None:
        self.data[release.tag] = {"asset": release.asset, "sha256": sha256, "size": size, "url": url,
                                  "recorded_at": _now()}
        _write_json_atomic(self.path, self.data)


def _mismatch(expected: Optional[dict], digest: str, size: int, release: Release) -> Optional[str]:
    if expected is None:
        return None
    if digest != expected["sha256"] or (expected.get("size") and size != expected["size"]):
        return (f"sha256 {digest[:16]}… (size {size}) does not match {expected['sha256'][:16]}… "
                f"({expected['origin']}); the file is corrupt or not release {release.tag}")
    return None


def _local_path(source: str) -> Optional[Path]:
    if source.startswith("file://"):
        return Path(unquote(urlparse(source).path))
    if "://" in source:
        return None
    return Path(source).expanduser()


def _cleanup_stale(tdir: Path) -> None:
    for p in list(tdir.glob(".staging-*")) + list(tdir.glob(".old-*")):
        shutil.rmtree(p, ignore_errors=True)


def install(task: Task, tag: Optional[str] = None, *, models_dir: Optional[PathLike] = None,
            source: Optional[str] = None, force: bool = False, quiet: bool = False,
            log: Optional[Callable[[str], None]] = None) -> InstalledModel:
    """Install release ``tag`` of ``task`` (default release when None) and return it.

    ``source`` replaces the release URL: an http(s)/file URL, a local zip or a local model folder (air-gapped
    installs); it is installed under ``tag``. Already installed and intact → returned with no network access.
    """
    from filelock import FileLock

    say = log or (lambda m: None if quiet else _stderr(m))
    known = {r.tag for r in task.releases}
    if tag is not None and tag not in known and source is None:
        release = task.release(tag)  # prefix match or KeyError naming the known tags
    elif tag is not None and tag not in known:
        release = Release(tag, Path(urlparse(source).path).name or tag, "custom release")
    else:
        release = task.release(tag)
    tdir = task_dir(task, models_dir)
    try:
        tdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstallError(f"{tdir}: cannot create the models folder ({exc.strerror}); "
                           f"set {ENV_MODELS_DIR} or pass -models-dir") from exc
    with FileLock(str(tdir / ".install.lock")):
        _cleanup_stale(tdir)
        if not force:
            try:
                existing = find_installed(task, release.tag, models_dir)
            except ModelError as exc:
                say(f"{exc.args[0].split(';')[0]}; reinstalling")
                existing = None
            if existing is not None:
                return existing
        return _install_locked(task, release, tdir, source, quiet, say)


def _install_locked(task: Task, release: Release, tdir: Path, source: Optional[str], quiet: bool,
                    say: Callable[[str], None]) -> InstalledModel:
    trust = _Trust(tdir / TRUST_FILE)
    staging = tdir / f".staging-{release.tag}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    downloaded: Optional[Path] = None
    try:
        known: Dict[Path, str] = {}
        local = _local_path(source) if source else (release.embedded_path() if release.embedded else None)
        custom = source is not None
        # custom sources are checked against a pinned hash only, and never become the trusted record
        expected = trust.expected(release) if not custom or release.sha256 else None
        if local is not None and local.is_dir():
            origin = str(local)
            model_src = find_model_folder(local)
            validate_model_folder(model_src, task.dataset_labels, task.predictor.checkpoints, origin)
            folder_name = model_folder_name(model_src)
            shutil.copytree(model_src, staging / folder_name)
            digest, size, url = _tree_sha256(staging / folder_name), 0, local.resolve().as_uri()
            expected = None  # a folder has no release hash to compare with
        else:
            if local is not None:
                if not local.is_file():
                    raise InstallError(f"{local}: no such file or folder")
                archive, url = local, local.resolve().as_uri()
                digest, size = sha256_file(local), local.stat().st_size
            else:
                urls = [source] if source else [release.url(b) for b in release_base_urls(task)]
                say(f"Downloading {task.name} release {release.tag} from {urls[0]}")
                got = download(urls, tdir / ".downloads" / release.tag / release.asset,
                               expected_size=(expected or {}).get("size"), quiet=quiet, log=say,
                               verify=lambda d, n: _mismatch(expected, d, n, release))
                archive, url, digest, size = got.path, got.url, got.sha256, got.size
                downloaded = archive
            origin = url
            problem = _mismatch(expected, digest, size, release)
            if problem:
                raise InstallError(f"{origin}: {problem}: pass the right file")
            extracted = safe_extract(archive, staging / "_unpacked")
            model_src = find_model_folder(staging / "_unpacked")
            validate_model_folder(model_src, task.dataset_labels, task.predictor.checkpoints, origin)
            folder_name = model_folder_name(model_src)
            os.replace(model_src, staging / folder_name)  # also right when the zip has no root folder
            shutil.rmtree(staging / "_unpacked", ignore_errors=True)
            known = {staging / folder_name / p.relative_to(model_src): d
                     for p, d in extracted.items() if model_src in p.parents}
        marker = {
            "task": task.name, "tag": release.tag, "asset": release.asset, "url": url, "sha256": digest,
            "size": size, "installed_at": _now(), "custom": custom, "model_folder": folder_name,
            "installer": f"sct_task_sciseg {__version__}", "files": _file_table(staging, known),
        }
        _write_json_atomic(staging / MARKER, marker)  # written last: marks the folder complete
        target = tdir / release.tag
        old = None
        if target.exists():
            old = tdir / f".old-{release.tag}-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if expected is None and not custom and not release.sha256:
            trust.record(release, digest, size, url)
            say(f"note: release {release.tag} publishes no checksum; recorded sha256 {digest} at first install "
                f"({tdir / TRUST_FILE}); later installs of {release.tag} are verified against it")
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)
        say(f"Installed {task.name} {release.tag} in {target}")
        return _marker_to_model(target, marker)
    except InstallError:
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)
        raise
    except OSError as exc:
        raise InstallError(f"{tdir}: install failed ({exc}); the previous model, if any, is untouched") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_installed(task: Task, tag: Optional[str] = None, models_dir: Optional[PathLike] = None,
                     quiet: bool = False) -> InstalledModel:
    """The installed model, installing it first (with a message) when missing or damaged."""
    try:
        found = find_installed(task, tag, models_dir)
    except ModelError as exc:
        if not quiet:
            _stderr(f"{exc.args[0].split(';')[0]}; reinstalling")
        return install(task, tag, models_dir=models_dir, force=True, quiet=quiet)
    if found is not None:
        return found
    if not quiet:
        _stderr(f"Model {task.name}@{task.release(tag).tag} is not installed yet: installing it now")
    return install(task, tag, models_dir=models_dir, quiet=quiet)
