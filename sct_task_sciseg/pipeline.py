"""Segmentation pipeline: validate → reorient to the model's orientation → one nnU-Net inference → reorient
back → class-aware post-processing → one mask per output, in the input's exact space, written atomically.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import nibabel as nib
import numpy as np

from . import __version__
from .download import sha256_file
from .errors import ModelError
from .nifti import (check_writable, from_array, load_image, mask_image, output_base, save_atomic,
                    validate_image, write_text_atomic)
from .orientation import Reorientation, sct_to_nib_axcodes
from .postprocess import PostProcessing, apply, labels_from_probabilities, split
from .predictor import PredictorSettings
from .task import Task, get_task
from .weights import InstalledModel, ensure_installed

ImageLike = Union[str, Path, nib.Nifti1Image, np.ndarray]

#: Region of interest used by default: every tile of nnU-Net's own grid (skipping all-air tiles changes the
#: masks wherever a model predicts anything in air; see benchmarks/README.md). -fast crops to the body.
DEFAULT_CROP = "none"
FAST_CROP = "body"


@dataclass
class Segmentation:
    """The result of one inference: the label map and one mask image per task output, on the input grid."""

    image: nib.Nifti1Image
    labels: np.ndarray
    masks: Dict[str, nib.Nifti1Image]
    timings: Dict[str, float] = field(default_factory=dict)
    source: Optional[Path] = None
    stats: Dict[str, object] = field(default_factory=dict)  # tiles run/skipped, tile size, network seconds


class Segmenter:
    """Loads a model once and segments many images.

    >>> seg = Segmenter()                      # default task and release, installed on first use
    >>> seg.segment_file("sub-01_T2w.nii.gz")  # → {'sc': Path(...sc_seg.nii.gz), 'lesion': Path(...)}
    """

    def __init__(self, task: Union[str, Task, None] = None, tag: Optional[str] = None, *,
                 model_folder: Union[str, Path, None] = None, models_dir: Union[str, Path, None] = None,
                 device: str = "auto", threads: Optional[int] = None, tile_step_size: Optional[float] = None,
                 test_time_aug: Optional[bool] = None, folds: Optional[Sequence[int]] = None,
                 checkpoint: Optional[str] = None, postprocessing: Optional[PostProcessing] = None,
                 quiet: bool = False, precision: str = "auto", backend: str = "auto", crop: Optional[str] = None,
                 tiles: Optional[str] = None, fast: bool = False):
        self.task = task if isinstance(task, Task) else get_task(task)
        self.quiet = quiet
        self.model: Optional[InstalledModel] = None
        if model_folder is not None:
            self.model_folder = Path(model_folder)
            if not (self.model_folder / "plans.json").is_file():
                raise ModelError(f"{self.model_folder}: not an nnU-Net model folder (no plans.json)")
        else:
            self.model = ensure_installed(self.task, tag, models_dir, quiet=quiet)
            self.model_folder = self.model.model_folder
        self.dataset_json = json.loads((self.model_folder / "dataset.json").read_text())
        self.orientation = self.dataset_json.get("image_orientation", self.task.default_orientation)
        self.axcodes = sct_to_nib_axcodes(self.orientation)
        d = self.task.predictor
        self.settings = PredictorSettings(
            tile_step_size=d.tile_step_size if tile_step_size is None else float(tile_step_size),
            use_gaussian=d.use_gaussian,
            use_mirroring=d.use_mirroring if test_time_aug is None else bool(test_time_aug),
            device=device, threads=threads,
            folds=tuple(folds) if folds else d.folds,
            checkpoints=(checkpoint,) if checkpoint else d.checkpoints,
            precision=precision, backend=backend,
            crop=crop or (FAST_CROP if fast else DEFAULT_CROP),
            tiles=tiles or ("large" if fast else "patch"),
        )
        self.fast = bool(fast)
        self._resolved = None
        self.postprocessing = postprocessing or PostProcessing()
        self._predictor = None
        self.checkpoints = []
        self.load_seconds = 0.0

    # -- model -------------------------------------------------------------------------------------
    def load(self):
        """Load torch, nnU-Net and the weights (done once, on first use)."""
        if self._predictor is None:
            from .predictor import load_predictor
            t0 = time.perf_counter()
            self._predictor, self.checkpoints = load_predictor(self.model_folder, self.settings)
            self._resolved = self._predictor.sciseg_resolved
            self.load_seconds = time.perf_counter() - t0
        return self._predictor

    def _checkpoints(self):
        """The checkpoints used (known before loading, so that a batch can check outputs before loading)."""
        if not self.checkpoints:
            from .predictor import fold_checkpoints
            try:
                return fold_checkpoints(self.model_folder, self.settings)
            except ModelError:
                return []
        return self.checkpoints

    @property
    def resolved(self):
        """The concrete device/precision/backend/crop/tiles this segmenter runs with (``auto`` resolved)."""
        if self._resolved is None:
            from .predictor import resolve
            self._resolved = resolve(self.settings)
        return self._resolved

    # -- in memory ---------------------------------------------------------------------------------
    def _as_image(self, image: ImageLike, affine: Optional[np.ndarray]) -> nib.Nifti1Image:
        if isinstance(image, (str, Path)):
            return load_image(image)
        if isinstance(image, np.ndarray):
            if affine is None:
                raise ValueError("an array needs its affine (voxel → world mm)")
            return from_array(image, affine)
        if isinstance(image, nib.Nifti1Image):
            return validate_image(image, "<image>")
        raise TypeError(f"cannot segment a {type(image).__name__}")

    def segment(self, image: ImageLike, affine: Optional[np.ndarray] = None) -> Segmentation:
        """Segment one image (path, nibabel image, or array + affine); nothing is written."""
        from .predictor import predict_labels

        t0 = time.perf_counter()
        img = self._as_image(image, affine)
        ta = time.perf_counter()
        predictor = self.load()
        t1 = time.perf_counter()
        data = np.asanyarray(img.dataobj, dtype=np.float32)
        reo = Reorientation(img.affine, data.shape, self.axcodes)
        model_space = reo.apply(data)
        spacing = reo.zooms(img.header.get_zooms()[:3])
        arr_zyx = np.ascontiguousarray(model_space.transpose(2, 1, 0))
        spacing_zyx = spacing[::-1]
        if self.postprocessing.thr is None:
            labels_zyx = predict_labels(predictor, arr_zyx, spacing_zyx)
        else:
            _, probs = predict_labels(predictor, arr_zyx, spacing_zyx, return_probabilities=True)
            labels_zyx = labels_from_probabilities(np.asarray(probs), self.postprocessing.thr)
        t2 = time.perf_counter()
        stats = dict(getattr(predictor, "sciseg_stats", {}) or {})
        labels = reo.undo(np.asarray(labels_zyx).transpose(2, 1, 0)).astype(np.uint8)
        voxel_mm3 = float(np.prod(img.header.get_zooms()[:3]))
        labels = apply(labels, self.postprocessing, voxel_mm3)
        masks = {name: mask_image(m, img) for name, m in split(labels, self.task.outputs).items()}
        t3 = time.perf_counter()
        timings = {"load_input": ta - t0, "load_model": t1 - ta, "predict": t2 - t1, "postprocess": t3 - t2}
        return Segmentation(img, labels, masks, timings,
                            Path(image) if isinstance(image, (str, Path)) else None, stats)

    # -- files -------------------------------------------------------------------------------------
    def output_paths(self, input_path: Union[str, Path], output: Union[str, Path, None] = None) -> Dict[str, Path]:
        base = output_base(input_path, output)
        return {o.name: Path(f"{base}{o.suffix}.nii.gz") for o in self.task.outputs}

    def provenance(self, input_path: Optional[Path]) -> dict:
        """BIDS-derivatives ``GeneratedBy`` record with every parameter of this run."""
        from importlib.metadata import PackageNotFoundError, version

        def ver(pkg: str) -> Optional[str]:
            try:
                return version(pkg)
            except PackageNotFoundError:
                return None

        gen = {
            "Name": "sct_task_sciseg",
            "Version": __version__,
            "ModelCodeURL": self.task.code_url,
            "ModelURL": self.model.url if self.model else self.model_folder.resolve().as_uri(),
            "Task": self.task.name,
            "Release": self.model.tag if self.model else "custom-folder",
            "ModelSHA256": self.model.sha256 if self.model else None,
            "ModelFolder": self.model_folder.name,
            "Checkpoints": [f"{c.parent.name}/{c.name}" for c in self._checkpoints()],
            "ImageOrientation": self.orientation,
            "nnUNetVersion": ver("nnunetv2"),
            "TorchVersion": ver("torch"),
            "Python": platform.python_version(),
            "Parameters": {
                "tile_step_size": self.settings.tile_step_size,
                "use_gaussian": self.settings.use_gaussian,
                "test_time_aug": self.settings.use_mirroring,
                "device": self.settings.device,
                "threads": self.settings.threads,
                "folds": list(self.settings.folds) if self.settings.folds else None,
                "precision": self.resolved.precision,
                "backend": self.resolved.backend,
                "crop": self.resolved.crop,
                "tiles": self.resolved.tiles,
                "fast": self.fast,
                **self.postprocessing.as_dict(),
            },
        }
        out = {"GeneratedBy": [gen]}
        if input_path is not None:
            out["Sources"] = [Path(input_path).name]
            out["SourceSHA256"] = sha256_file(Path(input_path))
        return out

    def segment_file(self, input_path: Union[str, Path], output: Union[str, Path, None] = None) -> Dict[str, Path]:
        """Segment a NIfTI file and write ``<base>_sc_seg.nii.gz``, ``<base>_lesion_seg.nii.gz`` + JSON sidecars."""
        paths = self.output_paths(input_path, output)
        check_writable(next(iter(paths.values())).parent)
        result = self.segment(Path(input_path))
        t0 = time.perf_counter()
        self.write(result, paths, Path(input_path))
        result.timings["write"] = time.perf_counter() - t0
        self.last_timings = result.timings
        return paths

    def write(self, result: Segmentation, paths: Dict[str, Path], input_path: Optional[Path]) -> None:
        prov = self.provenance(input_path)
        for name, path in paths.items():
            save_atomic(result.masks[name], path)
            sidecar = dict(prov, Output=name, Labels=list(self.task.output(name).labels),
                           Description=self.task.output(name).description)
            write_text_atomic(json.dumps(sidecar, indent=2) + "\n",
                              Path(str(path)[: -len(".nii.gz")] + ".json"))


def segment(image: ImageLike, output: Union[str, Path, None] = None, *, affine: Optional[np.ndarray] = None,
            **kwargs) -> Union[Dict[str, Path], Segmentation]:
    """One call: a path is segmented and written (returns output paths); an image/array returns masks."""
    seg = Segmenter(**kwargs)
    if isinstance(image, (str, Path)):
        return seg.segment_file(image, output)
    return seg.segment(image, affine)
