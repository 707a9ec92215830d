"""Writing a segmentation's masks and their JSON sidecars: all of them or none.

Every mask and sidecar is written to a temporary file first, then all are renamed into place; when anything
fails (disk full, a target that cannot be replaced, Ctrl-C), the previous files are put back, so a folder
never holds a new cord mask beside a missing or stale lesion mask.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import nibabel as nib

from ..io.atomic import Content, atomic_write_all
from ..io.naming import sidecar_path
from ..io.nifti import image_content
from ..io.outputs import image_kind_of
from .extra_images import sidecar_fields
from .provenance import sidecar


def write_outputs(masks: Mapping[str, nib.Nifti1Image], paths: Mapping[str, Path], prov: dict, task,
                  extra: Sequence[Tuple[Path, Content]] = ()) -> Dict[str, Path]:
    """Write every image of ``paths`` and its sidecar (``prov`` plus the output's name, labels, description);
    keys other than the outputs' names are extra images (``sc_soft``: the cord's probability map); ``extra`` (the
    analysis) joins the same set. All of them or none (see the module's docstring)."""
    files: List[Tuple[Path, Content]] = list(extra)
    for name, path in paths.items():
        files.append((Path(path), image_content(masks[name], path)))
        files.append((sidecar_path(path), json.dumps(sidecar_for(prov, task, name), indent=2) + "\n"))
    atomic_write_all(files)
    return dict(paths)


def sidecar_for(prov: dict, task, key: str) -> dict:
    """The sidecar of image ``key``: an output's mask, or an extra image of it (``sc_soft``)."""
    kind = image_kind_of(key)
    output = task.output(key[: -len(kind.key)] if kind else key)
    return sidecar(prov, output, sidecar_fields(kind, output))


def read_sidecar(path: Path) -> dict:
    return json.loads(sidecar_path(path).read_text())
