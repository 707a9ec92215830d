"""Writing a segmentation's masks and their JSON sidecars, each file atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Mapping

import nibabel as nib

from ..io.atomic import atomic_write
from ..io.naming import sidecar_path
from ..io.nifti import save_image
from .provenance import sidecar


def write_outputs(masks: Mapping[str, nib.Nifti1Image], paths: Mapping[str, Path], prov: dict, task) -> Dict[str, Path]:
    """Write every mask of ``paths`` and its sidecar (``prov`` plus the output's name, labels, description)."""
    for name, path in paths.items():
        save_image(masks[name], path)
        atomic_write(sidecar_path(path), json.dumps(sidecar(prov, task.output(name)), indent=2) + "\n")
    return dict(paths)


def read_sidecar(path: Path) -> dict:
    return json.loads(sidecar_path(path).read_text())
