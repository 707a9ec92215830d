"""The nnU-Net model folder a release holds: finding it, naming it, its checkpoints, and checking it."""
from __future__ import annotations

import fnmatch
import json
from numbers import Integral
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

from ..errors import InstallError, ModelError
from .checkpoint_file import read_checkpoint, scan
from .plans_names import dataset_problem, names_problem, trainer_problem

MODEL_FOLDER_GLOB = "nnUNetTrainer*__*__*"
CONFIGURATION = "3d_fullres"
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


def plans_configuration(plans: dict, name: str = CONFIGURATION) -> Optional[dict]:
    """Configuration ``name`` of a plans dict with its ``inherits_from`` chain merged (as nnU-Net does)."""
    configurations = plans.get("configurations", {}) if isinstance(plans, dict) else {}
    chain, seen = [], set()
    while isinstance(configurations.get(name), dict) and name not in seen:
        seen.add(name)
        chain.append(configurations[name])
        name = configurations[name].get("inherits_from")
    if not chain:
        return None
    merged: dict = {}
    for part in reversed(chain):
        merged.update(part)
    return merged


def network_problem(configuration: dict, plans: Optional[dict] = None) -> Optional[str]:
    """Why what a plans configuration (and its ``plans``) names may not be used here: any class or function
    name outside the allow-list of :mod:`.plans_names`; None when all are allowed."""
    return names_problem(plans if isinstance(plans, dict) else {}, configuration)


def checkpoint_problem(ck: object, configuration: str = CONFIGURATION) -> Optional[str]:
    """Why a loaded checkpoint is not an nnU-Net checkpoint inference can use, or None."""
    if not isinstance(ck, dict):
        return f"holds a {type(ck).__name__}, not an nnU-Net checkpoint (a dict)"
    weights = ck.get("network_weights")
    if not isinstance(weights, Mapping) or not weights:
        what = "missing" if weights is None else f"a {type(weights).__name__}"
        return f"network_weights is {what}, not a state dict of tensors"
    for key, value in weights.items():
        if not isinstance(key, str) or type(value).__name__ not in ("Tensor", "Parameter"):
            return f"network_weights[{key!r}] is a {type(value).__name__}, not a tensor"
    init_args = ck.get("init_args", {})
    if not isinstance(init_args, dict):
        return f"init_args is a {type(init_args).__name__}, not a dict"
    trained_for = init_args.get("configuration", configuration)
    if trained_for != configuration:
        return f"trained for configuration {trained_for!r}, not {configuration}"
    problem = trainer_problem(ck.get("trainer_name", "nnUNetTrainer"))
    if problem:
        return problem
    axes = ck.get("inference_allowed_mirroring_axes")
    if axes is not None and not (isinstance(axes, (tuple, list)) and all(isinstance(a, Integral) for a in axes)):
        return f"inference_allowed_mirroring_axes {axes!r} is not a list of axes"
    return None


def _check_checkpoint(path: Path, label: str) -> None:
    """Install-time check of one checkpoint: its globals always; its content where torch is importable."""
    try:
        import torch  # noqa: F401
    except ImportError:
        with open(path, "rb") as f:
            scan(f, label, InstallError)
        return
    problem = checkpoint_problem(read_checkpoint(path, error=InstallError, label=label))
    if problem:
        raise InstallError(f"{label}: {problem}; not an nnU-Net model this package can run")


def validate_model_folder(model_folder: Path, expected_labels: Optional[Mapping[str, object]],
                          checkpoints: Sequence[str], origin: str) -> dict:
    """Check the nnU-Net layout, that ``dataset.json`` labels match the task, the network plans.json names
    and every checkpoint (loaded safely). Returns dataset.json."""
    try:
        dataset = json.loads((model_folder / "dataset.json").read_text())
        plans = json.loads((model_folder / "plans.json").read_text())
    except (OSError, ValueError) as exc:
        raise InstallError(f"{origin}: unreadable dataset.json/plans.json ({exc})") from exc
    configuration = plans_configuration(plans)
    if configuration is None:
        raise InstallError(f"{origin}: plans.json has no {CONFIGURATION} configuration")
    problem = network_problem(configuration, plans)
    if problem:
        raise InstallError(f"{origin}: {model_folder.name}/plans.json: {problem}")
    problem = dataset_problem(dataset)
    if problem:
        raise InstallError(f"{origin}: {model_folder.name}/dataset.json: {problem}")
    if expected_labels is not None:
        got = _normalise_labels(dataset.get("labels", {}))
        want = _normalise_labels(expected_labels)
        if got != want:
            raise InstallError(f"{origin}: dataset.json labels {got} do not match the task's {want}; "
                               "wrong model for this task")
    problem = _lookup(model_folder, checkpoints, None)[1]
    if problem:
        raise InstallError(f"{origin}: {problem} ({model_folder.name})")
    for path in sorted(p for name in checkpoints for p in model_folder.glob(f"fold_*/{name}") if p.is_file()):
        _check_checkpoint(path, f"{origin}: {model_folder.name}/{path.relative_to(model_folder).as_posix()}")
    return dataset
