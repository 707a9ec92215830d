"""Benchmark data: a model folder with SCIsegV2's exact shape (random weights) and realistic T2w inputs.

- ``make_sciseg_v2_shaped(dest)``: ``nnUNetTrainerDA5__nnUNetPlans__3d_fullres/`` with SCIsegV2's plans
  (3d_fullres PlainConvUNet, 6 stages 32→320, strides [1,1,1],[2,2,2]×4,[2,2,1], patch [128,192,96], spacing
  [0.6875, 0.5078, 0.6875], old plans format as nnunetv2 2.3.1 reads it), SCIseg's dataset.json, and
  ``fold_1/checkpoint_final.pth`` holding 30.8 M random weights plus an SGD momentum buffer of the same size,
  like a real nnU-Net checkpoint (≈ 0.25 GB). Speed does not depend on weight values.
- ``make_neck(path, kind)``: a synthetic cervical T2w volume (``sct_task_sciseg.demo.phantom`` anatomy: cord, CSF,
  vertebrae, discs, muscle, fat, lesion) inside a neck-shaped body surrounded by air (Rician noise only), on
  the sagittal 20×384×384 @ 2.5×0.5×0.5 mm grid or the axial 320×320×40 @ 0.5×0.5×3 mm grid. Voxel axes run
  L→R, P→A, I→S (RAS), so nnU-Net's own file pipeline (SimpleITK) and sciseg/SCT tile them identically.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Dict, Sequence, Tuple

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "release"))
from build_test_model import NNUNET_RESAMPLING  # noqa: E402

TRAINER_FOLDER = "nnUNetTrainerDA5__nnUNetPlans__3d_fullres"
SPACING = [0.6875, 0.5078125, 0.6875]
PATCH = [128, 192, 96]
STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 1]]

GRIDS: Dict[str, Tuple[Tuple[int, int, int], Tuple[float, float, float]]] = {
    "sagittal": ((20, 384, 384), (2.5, 0.5, 0.5)),
    "axial": ((320, 320, 40), (0.5, 0.5, 3.0)),
}


def sciseg_v2_plans() -> dict:
    cfg = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": PATCH,
        "median_image_size_in_voxels": [280.0, 378.0, 73.0],
        "spacing": SPACING,
        "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False],
        "UNet_class_name": "PlainConvUNet",
        "UNet_base_num_features": 32,
        "n_conv_per_stage_encoder": [2, 2, 2, 2, 2, 2],
        "n_conv_per_stage_decoder": [2, 2, 2, 2, 2],
        "num_pool_per_axis": [5, 5, 4],
        "pool_op_kernel_sizes": STRIDES,
        "conv_kernel_sizes": [[3, 3, 3]] * 6,
        "unet_max_num_features": 320,
        **NNUNET_RESAMPLING,
        "batch_dice": False,
    }
    return {
        "dataset_name": "Dataset501_SCIsegV2Shaped",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [0.8, 0.5078125, 0.8],
        "original_median_shape_after_transp": [240, 378, 64],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": cfg},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 3000.0, "mean": 600.0, "median": 550.0, "min": 0.0, "percentile_00_5": 20.0,
            "percentile_99_5": 2200.0, "std": 300.0}},
    }


def sciseg_dataset_json() -> dict:
    return {"channel_names": {"0": "T2w"}, "labels": {"background": 0, "sc": [1, 2], "lesion": 2},
            "regions_class_order": [1, 2], "numTraining": 281, "file_ending": ".nii.gz",
            "image_orientation": "RPI"}


def make_sciseg_v2_shaped(dest: Path, seed: int = 0) -> Path:
    """Write (once) the SCIsegV2-shaped model folder under ``dest``; returns the trainer folder."""
    import torch
    from sct_task_sciseg.inference.network import build_network

    folder = Path(dest) / TRAINER_FOLDER
    ckpt = folder / "fold_1" / "checkpoint_final.pth"
    if ckpt.is_file():
        return folder
    tmp = Path(dest) / f".{TRAINER_FOLDER}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "fold_1").mkdir(parents=True)
    plans = sciseg_v2_plans()
    (tmp / "plans.json").write_text(json.dumps(plans, indent=1))
    (tmp / "dataset.json").write_text(json.dumps(sciseg_dataset_json(), indent=1))
    torch.manual_seed(seed)
    net = build_network(plans["configurations"]["3d_fullres"], 1, 2)
    weights = net.state_dict()
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - 30.8e6) < 0.1e6, n
    momentum = {i: {"momentum_buffer": torch.randn_like(p) * 1e-3} for i, p in enumerate(net.parameters())}
    checkpoint = {
        "network_weights": weights,
        "optimizer_state": {"state": momentum, "param_groups": [
            {"lr": 1e-5, "momentum": 0.99, "dampening": 0, "weight_decay": 3e-5, "nesterov": True,
             "params": list(range(len(momentum)))}]},
        "grad_scaler_state": None,
        "logging": {},
        "_best_ema": 0.9,
        "current_epoch": 1000,
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 1,
                      "dataset_json": sciseg_dataset_json(), "unpack_dataset": True, "device": "cuda:0"},
        "trainer_name": "nnUNetTrainerDA5",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(checkpoint, str(tmp / "fold_1" / "checkpoint_final.pth"))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def _neck_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Neck cross-section in mm relative to the cord (x L→R, y P→A): an ellipse 110 mm wide, 100 mm deep,
    the cord 35 mm in front of the back of the neck."""
    return ((x / 55.0) ** 2 + ((y - 15.0) / 50.0) ** 2) <= 1.0


def make_neck(path: Path, kind: str, seed: int = 3) -> Path:
    """A realistic cervical T2w volume with a lesion, air around the neck; written once to ``path``."""
    from sct_task_sciseg.demo.phantom import phantom_params, render

    path = Path(path)
    if path.is_file():
        return path
    shape, zooms = GRIDS[kind]
    p = phantom_params(seed, lesion=True)
    affine = np.diag([*zooms, 1.0])
    fov = np.array(shape) * np.array(zooms)
    centre = np.array(p.center) + np.array([0.0, 15.0, 0.0])  # FOV centred a little in front of the cord
    affine[:3, 3] = centre - fov / 2 + np.array(zooms) / 2
    img, labels = render(p, shape, affine, noise_seed=seed, noise=False)
    ijk = np.indices(shape, dtype=np.float32)
    x = zooms[0] * ijk[0] + affine[0, 3] - p.center[0]
    y = zooms[1] * ijk[1] + affine[1, 3] - p.center[1]
    body = _neck_mask(x, y)
    from scipy.ndimage import gaussian_filter
    soft = gaussian_filter(body.astype(np.float32), 1.0)
    rng = np.random.default_rng(seed)
    sigma = p.noise * p.gain
    img = img * soft
    img = np.sqrt((img + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
    out = nib.Nifti1Image(np.round(img).astype(np.int16), affine)
    out.set_qform(affine, code=1)
    out.set_sform(affine, code=1)
    out.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp_" + path.name)
    nib.save(out, str(tmp))
    tmp.rename(path)
    return path


def copies(src: Path, folder: Path, n: int) -> Sequence[Path]:
    """``n`` copies of ``src`` as a BIDS dataset (sub-XX/anat/sub-XX_T2w.nii.gz)."""
    out = []
    for i in range(1, n + 1):
        dst = Path(folder) / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}_T2w.nii.gz"
        if not dst.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
        out.append(dst)
    return out
