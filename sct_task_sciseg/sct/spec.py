"""What this package serves SCT: one model key per task release, and where SCT keeps it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..tasks import Release, Task


@dataclass(frozen=True)
class ModelSpec:
    """One SCT model key served by this package."""

    key: str  # "<task name>/<tag>": SCT's folder(key) is this package's release folder
    task: str
    tag: str
    url: str  # the canonical (upstream) URL of the release: what source.json records
    dataset_orientation: bool = True  # SCT reads dataset.json["image_orientation"] (6.5+)
    models_dir: str = ""  # where SCT's folder(key) points: SCT's model folder, or the user's when it is read-only
    sct_models_dir: str = ""  # SCT's own model folder


def model_key(task: Task, release: Release) -> str:
    return f"{task.name}/{release.tag}"


def canonical_url(task: Task, release: Release) -> str:
    return release.url(task.base_url)


def deepseg_dir(models: Any, spec: ModelSpec) -> Path:
    """The models folder SCT uses for ``spec``, derived from SCT's ``folder()`` (``folder(key)`` =
    ``<dir>/<task>/<tag>``; routed to :attr:`ModelSpec.models_dir` while registered)."""
    return Path(models.folder(spec.key)).parent.parent
