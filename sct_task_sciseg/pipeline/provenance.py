"""The BIDS-derivatives record of how an output was made (``GeneratedBy``, ``Sources``)."""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

from .. import __version__
from ..inference.runtime import installed_version
from ..io.hashing import sha256_file


def _version(pkg: str) -> Optional[str]:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def generated_by(segmenter) -> dict:
    """The ``GeneratedBy`` entry of ``segmenter``'s outputs: software, model and every parameter."""
    model, settings, resolved = segmenter.model, segmenter.settings, segmenter.resolved
    return {
        "Name": "sct_task_sciseg",
        "Version": __version__,
        "ModelCodeURL": segmenter.task.code_url,
        "ModelURL": model.url if model else segmenter.model_folder.resolve().as_uri(),
        "Task": segmenter.task.name,
        "Release": model.tag if model else "custom-folder",
        "ModelSHA256": model.sha256 if model else None,
        "ModelFolder": segmenter.model_folder.name,
        "Checkpoints": [f"{c.parent.name}/{c.name}" for c in segmenter.checkpoints],
        "ImageOrientation": segmenter.orientation,
        "nnUNetVersion": installed_version()[1] or None,
        "TorchVersion": _version("torch"),
        "Python": platform.python_version(),
        "Parameters": {
            "tile_step_size": settings.tile_step_size,
            "use_gaussian": settings.use_gaussian,
            "test_time_aug": settings.use_mirroring,
            "device": settings.device,
            "threads": settings.threads,
            "folds": list(settings.folds) if settings.folds else None,
            "precision": resolved.precision,
            "backend": resolved.backend,
            "crop": resolved.crop,
            "tiles": resolved.tiles,
            "fast": segmenter.config.fast,
            **segmenter.config.postprocessing.as_dict(),
        },
    }


def provenance(segmenter, input_path: Optional[Path]) -> dict:
    """``{"GeneratedBy": [...], "Sources": [...], "SourceSHA256": ...}`` for an input of ``segmenter``."""
    out = {"GeneratedBy": [generated_by(segmenter)]}
    if input_path is not None:
        out["Sources"] = [Path(input_path).name]
        out["SourceSHA256"] = sha256_file(Path(input_path))
    return out


def sidecar(prov: dict, output, fields: dict) -> dict:
    """The JSON sidecar of one image of task output ``output`` (a :class:`~sct_task_sciseg.tasks.Output`):
    the provenance, the output's name and labels, then ``fields`` (its description; see
    :func:`~sct_task_sciseg.pipeline.extra_images.sidecar_fields`)."""
    return dict(prov, Output=output.name, Labels=list(output.labels), **fields)
