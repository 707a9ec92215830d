"""Writing a segmentation's masks and their JSON sidecars, each file atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Mapping

import nibabel as nib

from ..io.atomic import atomic_write
from ..io.naming import SOFT, sidecar_path
from ..io.nifti import save_image
from .provenance import sidecar


def write_outputs(masks: Mapping[str, nib.Nifti1Image], paths: Mapping[str, Path], prov: dict, task) -> Dict[str, Path]:
    """Write every image of ``paths`` and its sidecar (``prov`` plus the output's name, labels, description);
    ``<name>_soft`` keys are the outputs' probability maps."""
    for name, path in paths.items():
        save_image(masks[name], path)
        atomic_write(sidecar_path(path), json.dumps(sidecar_for(prov, task, name), indent=2) + "\n")
    return dict(paths)


def sidecar_for(prov: dict, task, name: str) -> dict:
    """The sidecar of output ``name`` (``<output>_soft``: that output's probability map)."""
    soft = name.endswith(SOFT)
    return sidecar(prov, task.output(name[: -len(SOFT)] if soft else name), soft=soft)


def read_sidecar(path: Path) -> dict:
    return json.loads(sidecar_path(path).read_text())
