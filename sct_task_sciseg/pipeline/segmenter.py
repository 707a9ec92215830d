"""Segmentation pipeline: validate → reorient to the model's orientation → one nnU-Net inference → reorient
back → class-aware post-processing → one mask per output, in the input's exact space, written atomically.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import nibabel as nib
import numpy as np

from ..errors import ModelError, OutputError, SciSegError
from ..io.atomic import check_writable
from ..io.intensity import power_of_two_scale
from ..io.naming import real
from ..io.outputs import ScanOutputs
from ..io.nifti import from_array, mask_image, read_header, validate_image
from ..io.orientation import Reorientation, sct_to_nib_axcodes
from ..io.resources import check_model_space
from ..tasks import Task
from ..weights import InstalledModel, ensure_installed, find_installed
from .config import SegmenterConfig
from .extra_images import Inference, extra_images, needs_probabilities
from .postprocess import PostProcessing, apply, labels_from_probabilities, soft_maps, split, uncertain_shares
from .provenance import provenance
from .writer import write_outputs

ImageLike = Union[str, Path, nib.Nifti1Image, np.ndarray]


@dataclass
class Segmentation:
    """The result of one inference: the label map and one mask image per task output, on the input grid."""

    image: nib.Nifti1Image
    labels: np.ndarray
    masks: Dict[str, nib.Nifti1Image]
    timings: Dict[str, float] = field(default_factory=dict)
    stats: Dict[str, object] = field(default_factory=dict)  # tiles run/skipped, tile size, phase seconds
    extra_images: Dict[str, nib.Nifti1Image] = field(default_factory=dict)  # by key: ``sc_soft`` (``-soft``)
    uncertain: Dict[str, float] = field(default_factory=dict)  # ``confidence=True``: see uncertain_shares


class Segmenter:
    """Loads a model once and segments many images.

    >>> seg = Segmenter()                      # default task and release, installed on first use
    >>> seg.segment_file("sub-01_T2w.nii.gz")  # → {'sc': Path(...sc_seg.nii.gz), 'lesion': Path(...)}

    The arguments are the fields of :class:`SegmenterConfig` (see there); ``Segmenter.from_config(seg.config)``
    builds the same segmenter elsewhere (another process). A segmenter may be shared by threads: its model
    loads once and predictions run one at a time.
    """

    def __init__(self, task: Union[str, Task, None] = None, tag: Optional[str] = None, *,
                 model_folder: Optional[Union[str, Path]] = None, models_dir: Optional[Union[str, Path]] = None,
                 device: str = "auto", threads: Optional[int] = None, tile_step_size: Optional[float] = None,
                 test_time_aug: Optional[bool] = None, folds: Optional[Sequence[int]] = None,
                 checkpoint: Optional[str] = None, postprocessing: Optional[PostProcessing] = None,
                 quiet: bool = False, precision: str = "auto", backend: str = "auto", crop: Optional[str] = None,
                 tiles: Optional[str] = None, fast: bool = False, extra_images: Sequence[str] = (),
                 confidence: bool = False):
        self.config = SegmenterConfig(
            task=task, tag=tag, model_folder=model_folder, models_dir=models_dir, device=device, threads=threads,
            tile_step_size=tile_step_size, test_time_aug=test_time_aug,
            folds=folds, checkpoint=checkpoint, postprocessing=postprocessing,
            quiet=quiet, precision=precision, backend=backend, crop=crop, tiles=tiles, fast=fast,
            extra_images=extra_images, confidence=confidence)
        from ..inference.runtime import require_runtime
        require_runtime()  # cheap (package metadata only): before any download or import of torch
        self.task, self.tag = self.config.resolved_task()
        self.settings = self.config.predictor_settings(self.task)
        self._model: Optional[InstalledModel] = None
        self._model_folder = Path(self.config.model_folder) if self.config.model_folder else None
        if self._model_folder is not None and not (self._model_folder / "plans.json").is_file():
            raise ModelError(f"{self._model_folder}: not an nnU-Net model folder (no plans.json)")
        self._loaded = None
        self._resolved = None
        self._dataset_json: Optional[dict] = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: SegmenterConfig) -> "Segmenter":
        return cls(**{name: getattr(config, name) for name in SegmenterConfig.names()})

    # -- model -------------------------------------------------------------------------------------
    @property
    def model(self) -> Optional[InstalledModel]:
        """The installed release (installed on first use); None when running a model folder directly."""
        if self._model is None and self._model_folder is None:
            self._model = ensure_installed(self.task, self.tag, self.config.models_dir, quiet=self.config.quiet)
        return self._model

    @property
    def model_folder(self) -> Path:
        return self._model_folder if self._model_folder is not None else self.model.model_folder

    @property
    def dataset_json(self) -> dict:
        """The model's dataset.json, read once (every segmentation needs its orientation and regions)."""
        if self._dataset_json is None:
            self._dataset_json = json.loads((self.model_folder / "dataset.json").read_text())
        return self._dataset_json

    @property
    def plans(self) -> dict:
        return json.loads((self.model_folder / "plans.json").read_text())

    @property
    def orientation(self) -> str:
        return self.dataset_json.get("image_orientation", self.task.default_orientation)

    @property
    def axcodes(self):
        return sct_to_nib_axcodes(self.orientation)

    def load(self):
        """Load torch, nnU-Net and the weights (done once, on first use); returns the nnU-Net predictor."""
        with self._lock:
            if self._loaded is None:
                from ..inference.loader import load_predictor
                self._loaded = load_predictor(self.model_folder, self.settings)
                self._resolved = self._loaded.resolved
        return self._loaded.predictor

    @property
    def engine(self):
        """The network engine of the loaded model (loads it)."""
        self.load()
        return self._loaded.engine

    @property
    def checkpoints(self) -> List[Path]:
        """The checkpoints used (known before loading, so that a batch can check outputs before loading)."""
        if self._loaded is not None:
            return self._loaded.checkpoints
        from ..weights.model_folder import fold_checkpoints
        try:
            return fold_checkpoints(self.model_folder, self.settings.checkpoints, self.settings.folds)
        except ModelError:
            return []

    @property
    def resolved(self):
        """The concrete device/precision/backend/crop/tiles this segmenter runs with (``auto`` resolved)."""
        if self._resolved is None:
            from ..inference.settings import resolve
            self._resolved = resolve(self.settings)
        return self._resolved

    # -- in memory ---------------------------------------------------------------------------------
    def _installed_folder(self) -> Optional[Path]:
        """The model folder when it is there without installing anything, else None."""
        if self._model_folder is not None or self._model is not None:
            return self.model_folder
        try:
            self._model = find_installed(self.task, self.tag, self.config.models_dir)
        except SciSegError:  # damaged: loading the model reports it
            return None
        return self._model.model_folder if self._model is not None else None

    def check_size(self, image: nib.Nifti1Image, name: str, install: bool = True) -> None:
        """Refuse (InputError) an image too large at the model's spacing, or for the memory available now;
        only its header is read. ``install=False``: no check when the model is not installed yet."""
        if not install and self._installed_folder() is None:
            return
        reo = Reorientation(image.affine, image.shape[:3], self.axcodes)
        shape_zyx = tuple(int(n) for n in reo.zooms(image.shape[:3]))[::-1]
        zooms_zyx = reo.zooms(image.header.get_zooms()[:3])[::-1]
        configurations = self.plans["configurations"]
        spacing = (configurations.get("3d_fullres") or next(iter(configurations.values())))["spacing"]
        check_model_space(name, shape_zyx, zooms_zyx, spacing, heads=max(1, len(self.task.outputs)))

    def _scale_free(self) -> bool:
        """True when the model z-scores every input channel (its masks then ignore a global intensity scale)."""
        return all(set(c.get("normalization_schemes", [])) == {"ZScoreNormalization"}
                   for c in self.plans["configurations"].values())

    def _as_image(self, image: ImageLike, affine: Optional[np.ndarray]) -> nib.Nifti1Image:
        if isinstance(image, (str, Path)):
            header = read_header(image)
            self.check_size(header.image, str(image))
            return validate_image(header.image, str(image))
        if isinstance(image, np.ndarray):
            if affine is None:
                raise ValueError("an array needs its affine (voxel → world mm)")
            return from_array(image, affine)
        if isinstance(image, nib.Nifti1Image):
            return validate_image(image, "<image>")
        raise TypeError(f"cannot segment a {type(image).__name__}")

    def segment(self, image: ImageLike, affine: Optional[np.ndarray] = None, *,
                progress: Optional[Callable[[str, int, int], None]] = None) -> Segmentation:
        """Segment one image (path, nibabel image, or array + affine); nothing is written.

        ``progress(stage, done, total)`` follows the stages: "load", "preprocess", "network" (forward passes
        done / to do), "resample", "postprocess"."""
        report = progress or (lambda stage, done, total: None)
        t0 = time.perf_counter()
        img = self._as_image(image, affine)
        if not isinstance(image, (str, Path)):  # (a path was checked before its data were read)
            name = image.get_filename() if isinstance(image, nib.Nifti1Image) else None
            self.check_size(img, name or "<image>")
        ta = time.perf_counter()
        if self._loaded is None:
            report("load", 0, 0)
        predictor = self.load()
        t1 = time.perf_counter()
        labels, probs, stats = self._predict(predictor, img, progress)
        report("postprocess", 0, 0)
        t2 = time.perf_counter()
        voxel_mm3 = float(np.prod(img.header.get_zooms()[:3]))
        labels = apply(labels, self.config.postprocessing, voxel_mm3, self.task.labels)
        parts = split(labels, self.task.outputs)
        masks = {name: mask_image(m, img) for name, m in parts.items()}
        maps = {} if probs is None else soft_maps(probs, self._regions_class_order(), self.task.outputs)
        uncertain = uncertain_shares(maps) if self.config.confidence and maps else {}
        extra = extra_images(self.config.extra_images, Inference(img, labels, parts, maps))
        t3 = time.perf_counter()
        timings = {"load_input": ta - t0, "load_model": t1 - ta, "predict": t2 - t1, "postprocess": t3 - t2}
        return Segmentation(img, labels, masks, timings, stats, extra, uncertain)

    def _regions_class_order(self) -> List[int]:
        order = self.dataset_json.get("regions_class_order")
        if not order:
            raise ModelError(f"{self.model_folder}: -thr and -soft need a region-based model (regions_class_order)")
        return [int(c) for c in order]

    def _predict(self, predictor, img: nib.Nifti1Image, progress=None):
        """(label map, region probabilities or None, per-call statistics), all on the input grid: model
        orientation, (z, y, x) order, and back. Probabilities are kept only for ``-thr``, ``-soft`` and
        ``confidence``."""
        from ..inference.loader import predict

        data = np.asanyarray(img.dataobj, dtype=np.float32)
        reo = Reorientation(img.affine, data.shape, self.axcodes)
        arr_zyx = np.ascontiguousarray(reo.apply(data).transpose(2, 1, 0))
        scale = power_of_two_scale(arr_zyx) if self._scale_free() else 1.0
        if scale != 1.0:  # exact: nnU-Net's z-scores are unchanged, but its float32 sums no longer overflow
            arr_zyx *= np.float32(scale)
        spacing_zyx = reo.zooms(img.header.get_zooms()[:3])[::-1]
        thr = self.config.postprocessing.thr
        regions = bool(self.dataset_json.get("regions_class_order"))
        keep = needs_probabilities(self.config.extra_images) or (self.config.confidence and regions)
        if thr is None and not keep:
            labels_zyx, stats = predict(predictor, arr_zyx, spacing_zyx, report=progress)
            return reo.undo(np.asarray(labels_zyx).transpose(2, 1, 0)).astype(np.uint8), None, stats
        order = self._regions_class_order()
        (labels_zyx, probs_zyx), stats = predict(predictor, arr_zyx, spacing_zyx, return_probabilities=True,
                                                 report=progress)
        probs = np.stack([reo.undo(np.asarray(p, dtype=np.float32).transpose(2, 1, 0)) for p in probs_zyx])
        if thr is not None:
            labels = labels_from_probabilities(probs, thr, order)
        else:
            labels = reo.undo(np.asarray(labels_zyx).transpose(2, 1, 0)).astype(np.uint8)
        return labels, (probs if keep else None), stats

    # -- files -------------------------------------------------------------------------------------
    def output_plan(self, input_path: Union[str, Path], output: Union[str, Path, None] = None,
                    analyze: bool = False) -> ScanOutputs:
        """Every file a scan of ``input_path`` writes (``output``: ``-o``; ``analyze``: with its analysis)."""
        return ScanOutputs.for_input(input_path, output, self.task, self.config.extra_images, analyze)

    def output_paths(self, input_path: Union[str, Path], output: Union[str, Path, None] = None) -> Dict[str, Path]:
        return self.output_plan(input_path, output).images

    def provenance(self, input_path: Optional[Path]) -> dict:
        """BIDS-derivatives ``GeneratedBy`` record with every parameter of this run."""
        return provenance(self, input_path)

    def segment_file(self, input_path: Union[str, Path], output: Union[str, Path, None] = None) -> Dict[str, Path]:
        """Segment a NIfTI file and write one mask per output (``<base>_sc_seg.nii.gz``, …) + JSON sidecars."""
        return self.segment_file_with_result(input_path, output)[0]

    def segment_file_with_result(self, input_path: Union[str, Path], output: Union[str, Path, None] = None):
        """(written paths, :class:`Segmentation` with its timings, ``write`` included)."""
        paths = self.output_paths(input_path, output)
        check_writable(next(iter(paths.values())).parent)
        result = self.segment(Path(input_path))
        t0 = time.perf_counter()
        self.write(result, paths, Path(input_path))
        result.timings["write"] = time.perf_counter() - t0
        return paths, result

    def write(self, result: Segmentation, paths: Dict[str, Path], input_path: Optional[Path],
              extra: Sequence[Tuple[Path, object]] = ()) -> None:
        """Write the masks, maps and sidecars (and ``extra`` files: the analysis) as one all-or-none set."""
        targets = [*paths.values(), *(p for p, _ in extra)]
        if input_path is not None and real(input_path) in {real(p) for p in targets}:
            raise OutputError(f"{input_path}: an output would overwrite this input; choose another output name")
        write_outputs({**result.masks, **result.extra_images}, paths,
                      self.provenance(input_path), self.task, extra)


def segment(image: ImageLike, output: Union[str, Path, None] = None, *, affine: Optional[np.ndarray] = None,
            **kwargs) -> Union[Dict[str, Path], Segmentation]:
    """One call: a path is segmented and written (returns output paths); an image/array returns masks."""
    seg = Segmenter(**kwargs)
    if isinstance(image, (str, Path)):
        return seg.segment_file(image, output)
    return seg.segment(image, affine)
