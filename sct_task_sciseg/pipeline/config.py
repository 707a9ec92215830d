"""A segmenter described by a small, picklable value: another process rebuilds the same segmenter from it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional, Tuple, Union

from ..inference.settings import PredictorSettings, check_folds, check_threads, check_tile_step_size
from ..errors import SettingError
from ..io.outputs import IMAGE_KINDS
from ..tasks import Task, resolve_task
from .postprocess import PostProcessing

#: Region of interest, -fast included: every tile of nnU-Net's own grid (skipping all-air tiles changes the
#: masks wherever a model predicts anything in air, the body crop and large tiles change them in the body
#: too; benchmarks/results/precision_agreement.md). Only their own flags (-crop, -tiles) turn them on.
DEFAULT_CROP = "none"


def check_image_kinds(kinds) -> Tuple[str, ...]:
    """``kinds`` as a tuple in :data:`IMAGE_KINDS`' order; an unknown kind is refused."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds or ())
    unknown = sorted(set(kinds) - set(IMAGE_KINDS))
    if unknown:
        raise SettingError(f"extra_images: unknown kind {unknown[0]!r}; known: {', '.join(IMAGE_KINDS)}")
    return tuple(k for k in IMAGE_KINDS if k in kinds)


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything a :class:`~sct_task_sciseg.pipeline.segmenter.Segmenter` is made of (no loaded state).

    ``task`` is a task name (``"name@tag"`` accepted) or a :class:`Task`; ``model_folder`` runs an nnU-Net
    model folder directly instead of an installed release.
    """

    task: Union[str, Task, None] = None
    tag: Optional[str] = None
    model_folder: Optional[str] = None
    models_dir: Optional[str] = None
    device: str = "auto"
    threads: Optional[int] = None
    tile_step_size: Optional[float] = None
    test_time_aug: Optional[bool] = None
    folds: Optional[Tuple[int, ...]] = None
    checkpoint: Optional[str] = None
    postprocessing: PostProcessing = PostProcessing()
    quiet: bool = False
    precision: str = "auto"
    backend: str = "auto"
    crop: Optional[str] = None
    tiles: Optional[str] = None
    fast: bool = False
    extra_images: Tuple[str, ...] = ()  # kinds of :data:`~sct_task_sciseg.io.outputs.IMAGE_KINDS`: ("soft",)
    confidence: bool = False  # also measure the model's doubt (``Segmentation.uncertain``), same inference

    def __post_init__(self):
        for name in ("model_folder", "models_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))
        if self.folds is not None:
            object.__setattr__(self, "folds", check_folds(self.folds) or None)
        if self.threads is not None:
            check_threads(self.threads, cores=0)  # portable; the cap applies where the model loads
        if self.tile_step_size is not None:
            check_tile_step_size(float(self.tile_step_size))
        if self.postprocessing is None:
            object.__setattr__(self, "postprocessing", PostProcessing())
        object.__setattr__(self, "extra_images", check_image_kinds(self.extra_images))

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def resolved_task(self) -> Tuple[Task, Optional[str]]:
        """(task, release tag): ``"name@tag"`` split, an explicit ``tag`` wins."""
        return resolve_task(self.task, self.tag)

    def predictor_settings(self, task: Task) -> PredictorSettings:
        d = task.predictor
        return PredictorSettings(
            tile_step_size=d.tile_step_size if self.tile_step_size is None else float(self.tile_step_size),
            use_gaussian=d.use_gaussian,
            use_mirroring=d.use_mirroring if self.test_time_aug is None else bool(self.test_time_aug),
            device=self.device, threads=self.threads,
            folds=self.folds or d.folds,
            checkpoints=(self.checkpoint,) if self.checkpoint else d.checkpoints,
            verbose=False,
            precision=self.precision, backend=self.backend, fast=self.fast,
            crop=self.crop or DEFAULT_CROP,
            tiles=self.tiles or "patch",
        )

    def with_(self, **changes) -> "SegmenterConfig":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        out = asdict(self)
        if isinstance(self.task, Task):
            out["task"] = self.task.name
        return out
