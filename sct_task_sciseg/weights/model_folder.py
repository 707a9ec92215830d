"""The nnU-Net model folder a release holds: finding it, naming it, its checkpoints, and checking it."""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

from ..errors import InstallError, ModelError

MODEL_FOLDER_GLOB = "nnUNetTrainer*__*__*"


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


def _lookup(model_folder: Path, checkpoints: Sequence[str],
            folds: Optional[Sequence[int]]) -> Tuple[List[Path], Optional[str]]:
    """(checkpoints found, what is missing or None)."""
    dirs = [model_folder / f"fold_{f}" for f in folds] if folds else sorted(model_folder.glob("fold_*"))
    if not dirs:
        return [], "no fold_* folder"
    found, missing = [], []
    for fold in dirs:
        ckpt = next((fold / c for c in checkpoints if (fold / c).is_file()), None)
        if ckpt is None:
            missing.append(fold.name)
        else:
            found.append(ckpt)
    return found, (f"no {' or '.join(checkpoints)} in {', '.join(missing)}" if missing else None)


def fold_checkpoints(model_folder: Path, checkpoints: Sequence[str],
                     folds: Optional[Sequence[int]] = None) -> List[Path]:
    """The checkpoint of every fold (``folds``, else every ``fold_*``): the first of ``checkpoints`` present.
    Raises :class:`ModelError` naming every fold without one."""
    found, problem = _lookup(model_folder, checkpoints, folds)
    if problem:
        raise ModelError(f"{model_folder}: {problem}")
    return found


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


def _normalise_labels(labels: Mapping[str, object]) -> dict:
    def norm(v):
        if isinstance(v, (list, tuple)):
            return sorted(int(x) for x in v)
        return int(v)
    return {str(k): norm(v) for k, v in labels.items()}


def validate_model_folder(model_folder: Path, expected_labels: Optional[Mapping[str, object]],
                          checkpoints: Sequence[str], origin: str) -> dict:
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
    problem = _lookup(model_folder, checkpoints, None)[1]
    if problem:
        raise InstallError(f"{origin}: {problem} ({model_folder.name})")
    return dataset
