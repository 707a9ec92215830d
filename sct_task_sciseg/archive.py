"""Safe extraction of release zips and validation of the nnU-Net model folder they hold."""
from __future__ import annotations

import hashlib
import json
import zlib
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, List, Mapping, Optional, Tuple

from .errors import InstallError

MODEL_FOLDER_GLOB = "nnUNetTrainer*__*__*"


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


def find_model_folder(root: Path) -> Path:
    """The one folder under ``root`` (itself included) holding ``dataset.json``, ``plans.json``, ``fold_*``."""
    candidates = [p.parent for p in sorted(root.rglob("plans.json"))
                  if (p.parent / "dataset.json").is_file() and "__MACOSX" not in p.parts]
    if not candidates:
        raise InstallError(f"{root}: no nnU-Net model folder (dataset.json + plans.json + fold_*) inside")
    if len(candidates) > 1:
        names = ", ".join(str(c.relative_to(root)) for c in candidates)
        raise InstallError(f"{root}: several nnU-Net model folders ({names}); expected exactly one")
    return candidates[0]


def list_checkpoints(model_folder: Path, checkpoints: Tuple[str, ...]) -> List[Path]:
    """The checkpoint used in every ``fold_*`` (first name of ``checkpoints`` present)."""
    found = []
    for fold in sorted(model_folder.glob("fold_*")):
        for name in checkpoints:
            if (fold / name).is_file():
                found.append(fold / name)
                break
    return found


def _normalise_labels(labels: Mapping[str, object]) -> dict:
    def norm(v):
        if isinstance(v, (list, tuple)):
            return sorted(int(x) for x in v)
        return int(v)
    return {str(k): norm(v) for k, v in labels.items()}


def validate_model_folder(model_folder: Path, expected_labels: Optional[Mapping[str, object]],
                          checkpoints: Tuple[str, ...], origin: str) -> dict:
    """Check the nnU-Net layout and that ``dataset.json`` labels match the task. Returns dataset.json."""
    try:
        dataset = json.loads((model_folder / "dataset.json").read_text())
        plans = json.loads((model_folder / "plans.json").read_text())
    except (OSError, ValueError) as exc:
        raise InstallError(f"{origin}: unreadable dataset.json/plans.json ({exc})") from exc
    if "3d_fullres" not in plans.get("configurations", {}):
        raise InstallError(f"{origin}: plans.json has no 3d_fullres configuration")
    if expected_labels is not None:
        got = _normalise_labels(dataset.get("labels", {}))
        want = _normalise_labels(expected_labels)
        if got != want:
            raise InstallError(f"{origin}: dataset.json labels {got} do not match the task's {want}; "
                               "wrong model for this task")
    folds = sorted(model_folder.glob("fold_*"))
    if not folds:
        raise InstallError(f"{origin}: no fold_* folder in {model_folder.name}")
    ckpts = list_checkpoints(model_folder, checkpoints)
    if len(ckpts) != len(folds):
        missing = [f.name for f in folds if not any(c.parent == f for c in ckpts)]
        raise InstallError(f"{origin}: no {' or '.join(checkpoints)} in {', '.join(missing)}")
    return dataset
