"""SCT's install and up-to-date checks for this package's models: the verified installer, into SCT's model
folder, plus the ``source.json`` SCT reads."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from .. import __version__
from ..cli.hints import cli_message
from ..errors import InstallError, ModelError, SciSegError
from ..io.atomic import atomic_write
from ..tasks import Task, get_task
from ..weights import find_installed, install
from .spec import ModelSpec, deepseg_dir


def _write_source_json(folder: Path, spec: ModelSpec, installed) -> Path:
    data = {
        # the three keys SCT reads: its up-to-date check compares model_urls with MODELS[key]['url']
        "model_name": spec.key,
        "model_urls": installed.url if installed.custom else spec.url,
        "custom": bool(installed.custom),
        # provenance for people (SCT ignores these)
        "installed_by": f"sct_task_sciseg {__version__}",
        "release": spec.tag,
        "sha256": installed.sha256,
        "downloaded_from": installed.url,
    }
    return atomic_write(folder / "source.json", json.dumps(data, indent=4) + "\n")


def _task(spec: ModelSpec) -> Task:
    return get_task(spec.task)


def _check_sct_layout(folder: Path, spec: ModelSpec) -> None:
    """SCT loads the one ``nnUNetTrainer*`` folder directly inside ``folder(key)``; SCT 6.4 takes the model
    orientation (RPI) from the dataset name, which must then contain "SCI"."""
    trainers = sorted(p for p in folder.glob("nnUNetTrainer*") if p.is_dir())
    if len(trainers) != 1:
        raise InstallError(f"{folder}: SCT needs exactly one nnUNetTrainer* folder here, found "
                           f"{[t.name for t in trainers] or 'none'}; reinstall with "
                           f"`sciseg -install-task {spec.task}@{spec.tag} -force`")
    if not spec.dataset_orientation:
        try:
            name = json.loads((trainers[0] / "plans.json").read_text()).get("dataset_name", "")
        except (OSError, ValueError):
            name = ""
        if "SCI" not in name:
            raise InstallError(f"{trainers[0]}: this SCT (6.4) would run dataset {name!r} in LPI instead of "
                               "RPI (it ignores dataset.json's image_orientation); use SCT 6.5+ or `sciseg`")


def install_for_sct(models: Any, spec: ModelSpec, custom_url: Optional[str] = None, force: bool = False):
    """SCT's ``install_model`` for this package's keys: the verified installer, into SCT's model folder,
    then the ``source.json`` SCT expects. ``custom_url`` (``-custom-url``) is a download source for the
    same release (checked against its pinned hash when one is pinned)."""
    models_dir = deepseg_dir(models, spec)
    if spec.sct_models_dir and os.path.realpath(models_dir) != os.path.realpath(spec.sct_models_dir):
        print(f"SCT's model folder {spec.sct_models_dir} is read-only: installing into {models_dir} "
              "(the user models folder, $SCISEG_MODELS_DIR to choose another)")
    print(f"Installing {spec.task} release {spec.tag} with sct_task_sciseg's verified installer "
          f"into {models_dir / spec.task / spec.tag}")
    try:
        installed = install(_task(spec), spec.tag, models_dir=models_dir, source=custom_url or None, force=force)
    except SciSegError as exc:  # worded for the command line, as SCT prints it
        raise type(exc)(cli_message(exc)) from exc
    folder = Path(models.folder(spec.key))
    if os.path.realpath(installed.path) != os.path.realpath(folder):
        raise InstallError(f"{installed.path}: installed outside SCT's model folder {folder}; "
                           "this version of sct_task_sciseg does not match SCT's layout")
    _check_sct_layout(folder, spec)
    _write_source_json(folder, spec, installed)
    print(f"Installed {spec.task} {spec.tag} (sha256 {installed.sha256}) for SCT in {folder}")
    return installed


def sct_model_ok(models: Any, spec: ModelSpec) -> bool:
    """SCT's ``is_up_to_date`` for this package's keys: the installed files match the install record (a
    damaged copy → False, so SCT reinstalls it through :func:`install_for_sct`). A copy installed by the
    ``sciseg`` command gets the ``source.json`` SCT needs."""
    try:
        installed = find_installed(_task(spec), spec.tag, models_dir=deepseg_dir(models, spec))
    except ModelError as exc:
        print(f"warning: {exc.message}", file=sys.stderr)
        return False
    if installed is None:
        return False
    folder = Path(models.folder(spec.key))
    try:
        _check_sct_layout(folder, spec)
    except InstallError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return False
    try:
        source = json.loads((folder / "source.json").read_text())
    except (OSError, ValueError):
        source = None
    if not source or source.get("model_name") != spec.key or source.get("sha256") != installed.sha256:
        try:
            _write_source_json(folder, spec, installed)
        except OSError as exc:
            print(f"warning: {folder}: cannot write source.json ({exc})", file=sys.stderr)
    return True
