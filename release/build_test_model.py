#!/usr/bin/env python
"""Build the small real nnU-Net v2 model used by the tests and the offline demo.

The result is an nnU-Net v2 trained-model folder shaped like SCIseg's release::

    OUT/nnUNetTrainerDA5__nnUNetPlans__3d_fullres/
        dataset.json   labels {"background": 0, "sc": [1, 2], "lesion": 2}, regions_class_order [1, 2], RPI
        plans.json     old (nnunetv2 <= 2.3) plans format, readable by nnunetv2 2.3.1 and 2.8.x
        fold_1/checkpoint_final.pth

The network is the PlainConvUNet nnU-Net builds from these plans (4 stages, 8 -> 64 features), trained by a
short PyTorch loop (not nnU-Net's trainer) on synthetic phantoms (``sct_task_sciseg.demo.phantom``) in many
orientations and resolutions, plus the real T2w volumes of sct_testing_data (read in place). Every training
volume goes through nnU-Net's own ``DefaultPreprocessor.run_case_npy`` after being reoriented the way SCT feeds
SCIseg (SCT "RPI" = nibabel axis codes ('L', 'A', 'S'), transposed (x, y, z) -> (z, y, x)), so the network sees
exactly what ``nnUNetPredictor`` gives it at inference. Two sigmoid outputs = the two regions
(label in {1, 2}, label == 2), BCE + soft Dice, deep supervision during training only.

After training, the model is checked with a real ``nnUNetPredictor`` (``--validate-only DIR`` runs that alone).

    python release/build_test_model.py --out /tmp/phantom_model          # the phantom-r20261124 recipe
    python release/make_release.py /tmp/phantom_model --tag phantom-r20261124 \
        --asset sciseg_phantom_r20261124.zip --out /tmp/phantom_release

Training takes about 10 minutes on 2 free CPU cores (20 on a busy machine).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# OpenMP threads that spin while waiting slow training down badly on a shared machine; set before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
for _var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
    os.environ.setdefault(_var, os.path.join(os.environ.get("TMPDIR", "/tmp"), "nnunet_unused"))

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sct_task_sciseg.demo.phantom import dice, make_phantom  # noqa: E402

TRAINER = "nnUNetTrainerDA5"
CONFIGURATION = "3d_fullres"
FOLD = 1
MODEL_FOLDER = f"{TRAINER}__nnUNetPlans__{CONFIGURATION}"
MODEL_AXCODES = ("L", "A", "S")  # SCT's "RPI" ("from" letters) in nibabel's "towards" axis codes
PATCH = [64, 64, 32]  # (z, y, x) = (S-I, A-P, L-R) after the transpose
SMALL_PATCH = [48, 48, 32]  # cheaper patches for the first part of training
SMALL_PATCH_FRACTION = 0.6
REAL_FRACTION = 0.5  # share of training patches drawn from the real volumes
RELEASE_ITERATIONS = 1100  # phantom-r20261124 was built with the defaults (seed 0, 40 phantoms, 1100 iterations)
SPACING = [1.0, 0.8, 0.8]  # mm, same order
N_STAGES = 4
DEFAULT_DATA = os.environ.get("SCT_TESTING_DATA", "/work/shared/data/sct_testing_data")


# --------------------------------------------------------------------------------------------------------------
# nnU-Net files
# --------------------------------------------------------------------------------------------------------------
def make_dataset_json(num_training: int) -> dict:
    return {
        "channel_names": {"0": "T2w"},
        "labels": {"background": 0, "sc": [1, 2], "lesion": 2},
        "regions_class_order": [1, 2],
        "numTraining": int(num_training),
        "file_ending": ".nii.gz",
        "image_orientation": "RPI",
        "name": "SCIsegPhantom",
        "description": "Small demo model trained on synthetic T2w spinal cord phantoms and sct_testing_data "
                       "(t2, t2_fake_lesion). For tests and offline demos only: not for research or clinical use.",
        "reference": "https://github.com/ivadomed/model_seg_sci",
        "licence": "MIT",
    }


# nnU-Net's default resampling settings, as every 3d_fullres plans file of that era writes them
NNUNET_RESAMPLING = {
    "resampling_fn_data": "resample_data_or_seg_to_shape",
    "resampling_fn_seg": "resample_data_or_seg_to_shape",
    "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
    "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
    "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
    "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
}


def make_plans(median_shape: Sequence[int], original_median_spacing: Sequence[float],
               original_median_shape: Sequence[int], intensity_props: Dict[str, float]) -> dict:
    """Plans in the format nnunetv2 <= 2.3 writes (SCIseg's real plans use it; 2.4+ converts it on load)."""
    pool = [[1, 1, 1]] + [[2, 2, 2]] * (N_STAGES - 1)
    configuration = {
        "data_identifier": f"nnUNetPlans_{CONFIGURATION}",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": list(PATCH),
        "median_image_size_in_voxels": [float(v) for v in median_shape],
        "spacing": list(SPACING),
        "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False],
        "UNet_class_name": "PlainConvUNet",
        "UNet_base_num_features": 8,
        "n_conv_per_stage_encoder": [2] * N_STAGES,
        "n_conv_per_stage_decoder": [2] * (N_STAGES - 1),
        "num_pool_per_axis": [N_STAGES - 1] * 3,
        "pool_op_kernel_sizes": pool,
        "conv_kernel_sizes": [[3, 3, 3]] * N_STAGES,
        "unet_max_num_features": 64,
        **NNUNET_RESAMPLING,
        "batch_dice": False,
    }
    return {
        "dataset_name": "Dataset901_SCIsegPhantom",
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [float(v) for v in original_median_spacing],
        "original_median_shape_after_transp": [int(v) for v in original_median_shape],
        # SimpleITKIO (nnU-Net's default, as in SCIseg's plans) reads a file in its stored voxel order; the model
        # orientation (SCT RPI) is produced by the caller, as SCT and this package do
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: configuration},
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": intensity_props},
    }


def build_network(plans: dict, dataset_json: dict, deep_supervision: bool = False):
    """The network exactly as nnU-Net (2.4 - 2.8) builds it from the plans; no trainer-class lookup."""
    import pydoc
    import warnings

    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_manager = PlansManager(plans)
    with warnings.catch_warnings():  # nnunetv2 >= 2.4 warns when it converts the old plans format
        warnings.filterwarnings("ignore", message=".*old nnU-Net plans format.*")
        cm = plans_manager.get_configuration(CONFIGURATION)
    kwargs = dict(cm.network_arch_init_kwargs)
    for key in cm.network_arch_init_kwargs_req_import:
        if kwargs[key] is not None:
            kwargs[key] = pydoc.locate(kwargs[key])
    label_manager = plans_manager.get_label_manager(dataset_json)
    network_class = pydoc.locate(cm.network_arch_class_name)
    network = network_class(input_channels=len(dataset_json["channel_names"]),
                            num_classes=label_manager.num_segmentation_heads,
                            deep_supervision=deep_supervision, **kwargs)
    network.apply(network.initialize)
    return network, plans_manager, cm


# --------------------------------------------------------------------------------------------------------------
# Geometry: the way SCT hands an image to nnU-Net
# --------------------------------------------------------------------------------------------------------------
def to_model_space(img) -> Tuple[np.ndarray, List[float]]:
    """NIfTI → (z, y, x) float32 array in the model orientation and its spacing (z, y, x)."""
    import nibabel as nib
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    ornt = ornt_transform(io_orientation(img.affine), axcodes2ornt(MODEL_AXCODES))
    las = img.as_reoriented(ornt)
    zooms = [float(z) for z in las.header.get_zooms()[:3]]
    arr = np.asanyarray(las.dataobj).astype(np.float32)
    assert nib.aff2axcodes(las.affine) == MODEL_AXCODES
    return np.ascontiguousarray(arr.transpose(2, 1, 0)), zooms[::-1]


def from_model_space(arr_zyx: np.ndarray, img) -> np.ndarray:
    """Inverse of :func:`to_model_space` for a label array (back to ``img``'s voxel grid)."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    back = ornt_transform(axcodes2ornt(MODEL_AXCODES), io_orientation(img.affine))
    return apply_orientation(arr_zyx.transpose(2, 1, 0), back)


# --------------------------------------------------------------------------------------------------------------
# Training data
# --------------------------------------------------------------------------------------------------------------
class Case:
    def __init__(self, name: str, data: np.ndarray, seg: np.ndarray, weight: float):
        self.name = name
        self.data = data.astype(np.float32)  # (Z, Y, X), z-scored, target spacing
        self.seg = np.maximum(seg, 0).astype(np.uint8)  # 0 / 1 / 2
        self.weight = weight
        self.cord = np.argwhere(self.seg >= 1)
        self.lesion = np.argwhere(self.seg == 2)


def preprocess(arr_zyx: np.ndarray, seg_zyx: Optional[np.ndarray], spacing: Sequence[float], plans_manager,
               cm, dataset_json: dict):
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    pp = DefaultPreprocessor(verbose=False)
    data, seg, _ = pp.run_case_npy(arr_zyx[None].astype(np.float32),
                                   None if seg_zyx is None else seg_zyx[None].astype(np.int8),
                                   {"spacing": list(spacing)}, plans_manager, cm, dataset_json)
    return data[0], seg[0]


def _thicken(arr: np.ndarray, seg: np.ndarray, spacing: List[float], axis: int, factor: int):
    """Simulate thicker slices along ``axis``: average ``factor`` slices (labels by majority)."""
    n = arr.shape[axis] // factor * factor
    sl = [slice(None)] * 3
    sl[axis] = slice(0, n)
    a = arr[tuple(sl)]
    s = seg[tuple(sl)]
    shape = list(a.shape)
    shape[axis:axis + 1] = [n // factor, factor]
    a = a.reshape(shape).mean(axis=axis + 1)
    onehot = [(s == k).reshape(shape).mean(axis=axis + 1) for k in (0, 1, 2)]
    cord = (onehot[1] + onehot[2]) >= 0.5
    lesion = onehot[2] >= 0.5 * (onehot[1] + onehot[2] + 1e-9)
    s2 = cord.astype(np.uint8)
    s2[cord & lesion] = 2
    sp = list(spacing)
    sp[axis] *= factor
    return a, s2, sp


def real_cases(data_dir: Path, plans_manager, cm, dataset_json, log) -> Tuple[List[Case], List[dict]]:
    import nibabel as nib

    t2dir = data_dir / "t2"
    specs = []
    if (t2dir / "t2_fake_lesion.nii.gz").exists():
        img = nib.load(str(t2dir / "t2_fake_lesion.nii.gz"))
        sc = np.asanyarray(nib.load(str(t2dir / "t2_fake_lesion_sc_seg.nii.gz")).dataobj) > 0
        les = np.asanyarray(nib.load(str(t2dir / "t2_fake_lesion_lesion_seg.nii.gz")).dataobj) > 0
        lab = sc.astype(np.uint8) + (les & sc).astype(np.uint8)
        specs.append(("t2_fake_lesion", img, lab, 3.0))
    if (t2dir / "t2.nii.gz").exists():
        img = nib.load(str(t2dir / "t2.nii.gz"))
        lab = (np.asanyarray(nib.load(str(t2dir / "t2_seg-manual.nii.gz")).dataobj) > 0).astype(np.uint8)
        specs.append(("t2", img, lab, 1.2))
    cases, stats = [], []
    for name, img, lab, weight in specs:
        arr, spacing = to_model_space(img)
        labn = nib.Nifti1Image(lab, img.affine)
        seg, _ = to_model_space(labn)
        seg = np.rint(seg).astype(np.uint8)
        stats.append({"spacing": spacing, "shape": arr.shape, "fg": arr[seg > 0]})
        # the native grid counts most; rescaled and thick-slice variants add robustness
        variants = [("native", arr, seg, spacing, 1.0)]
        for f in (0.88, 1.12):
            variants.append((f"scale{f}", arr, seg, [s * f for s in spacing], 0.15))
        variants.append(("scale_aniso", arr, seg, [spacing[0] * 1.1, spacing[1] * 0.92, spacing[2] * 1.0], 0.15))
        for axis, factor in ((2, 3), (0, 3)):
            a2, s2, sp2 = _thicken(arr, seg, spacing, axis, factor)
            variants.append((f"thick{axis}x{factor}", a2, s2, sp2, 0.15))
        for vname, a, s, sp, w in variants:
            d, sg = preprocess(a, s, sp, plans_manager, cm, dataset_json)
            cases.append(Case(f"{name}/{vname}", d, sg, weight * w))
            log(f"  real {name}/{vname}: {a.shape} @ {np.round(sp, 3).tolist()} -> {d.shape}")
    return cases, stats


def phantom_cases(n: int, seed: int, plans_manager, cm, dataset_json, log) -> Tuple[List[Case], List[dict]]:
    import nibabel as nib

    cases, stats = [], []
    for i in range(n):
        pseed = 1_000_000 * (seed + 1) + i
        img, lab = make_phantom(pseed, lesion=(i % 5 != 4))
        arr, spacing = to_model_space(img)
        seg, _ = to_model_space(lab)
        seg = np.rint(seg).astype(np.uint8)
        d, sg = preprocess(arr, seg, spacing, plans_manager, cm, dataset_json)
        cases.append(Case(f"phantom{pseed}", d, sg, 1.0))
        stats.append({"spacing": spacing, "shape": arr.shape, "fg": None})
        if i < 3 or i == n - 1:
            log(f"  phantom {pseed} {nib.aff2axcodes(img.affine)} {arr.shape} @ {np.round(spacing, 2).tolist()} "
                f"-> {d.shape}")
    return cases, stats


# --------------------------------------------------------------------------------------------------------------
# Patch sampling and augmentation (numpy / scipy, deterministic for a generator)
# --------------------------------------------------------------------------------------------------------------
def _rotation(rng, max_deg: float) -> np.ndarray:
    m = np.eye(3)
    for axes in ((1, 2), (0, 2), (0, 1)):
        a = np.deg2rad(rng.uniform(-max_deg, max_deg))
        r = np.eye(3)
        i, j = axes
        r[i, i] = r[j, j] = np.cos(a)
        r[i, j], r[j, i] = -np.sin(a), np.sin(a)
        m = m @ r
    return m


def sample_patch(case: Case, rng: np.random.Generator, patch=PATCH) -> Tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import map_coordinates

    shape = np.array(case.data.shape)
    psz = np.array(patch)
    u = rng.uniform()
    # half of the patches anywhere (nnU-Net samples 2/3 anywhere): keeps false positives away from the cord
    if u < 0.2 and len(case.lesion):
        center = case.lesion[rng.integers(len(case.lesion))].astype(float)
    elif u < 0.5 and len(case.cord):
        center = case.cord[rng.integers(len(case.cord))].astype(float)
    else:
        center = rng.uniform(0, shape - 1)
    center = center + rng.uniform(-0.35, 0.35, size=3) * psz  # foreground anywhere in the patch
    if rng.uniform() < 0.35:  # spatial augmentation: small rotation and scaling
        matrix = _rotation(rng, 12.0) * rng.uniform(0.85, 1.18)
        grid = np.indices(patch, dtype=np.float32).reshape(3, -1) - (psz[:, None] - 1) / 2
        coords = (matrix @ grid) + center[:, None]
        img = map_coordinates(case.data, coords, order=1, mode="constant", cval=0.0).reshape(patch)
        seg = map_coordinates(case.seg, coords, order=0, mode="constant", cval=0).reshape(patch)
    else:
        lo = np.round(center - psz / 2).astype(int)
        img = np.zeros(patch, np.float32)
        seg = np.zeros(patch, np.uint8)
        src_lo, src_hi = np.maximum(lo, 0), np.minimum(lo + psz, shape)
        if np.all(src_hi > src_lo):
            dst_lo = src_lo - lo
            dst_hi = dst_lo + (src_hi - src_lo)
            s = tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
            d = tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi))
            img[d] = case.data[s]
            seg[d] = case.seg[s]
    return augment_intensity(img.astype(np.float32), rng), seg


def augment_intensity(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter, zoom

    if rng.uniform() < 0.15:
        img = gaussian_filter(img, sigma=rng.uniform(0.4, 1.0))
    if rng.uniform() < 0.15:  # low-resolution simulation
        f = rng.uniform(0.5, 0.85)
        small = zoom(img, f, order=0)
        img = zoom(small, np.array(img.shape) / np.array(small.shape), order=3)[:img.shape[0], :img.shape[1],
                                                                                :img.shape[2]]
    if rng.uniform() < 0.15:
        img = img + rng.normal(0, rng.uniform(0.02, 0.12), size=img.shape).astype(np.float32)
    if rng.uniform() < 0.5:
        img = img * rng.uniform(0.75, 1.25) + rng.uniform(-0.2, 0.2)
    if rng.uniform() < 0.3:  # gamma on the patch's range
        lo, hi = float(img.min()), float(img.max())
        if hi > lo:
            g = np.exp(rng.uniform(np.log(0.7), np.log(1.5)))
            img = ((img - lo) / (hi - lo)) ** g * (hi - lo) + lo
    return img.astype(np.float32)


def make_batch(cases: List[Case], probs: np.ndarray, rng: np.random.Generator, batch_size: int, patch=PATCH):
    import torch

    imgs, segs = [], []
    for _ in range(batch_size):
        case = cases[rng.choice(len(cases), p=probs)]
        img, seg = sample_patch(case, rng, patch)
        for axis in range(3):  # mirroring, as nnU-Net's DA (inference_allowed_mirroring_axes = (0, 1, 2))
            if rng.uniform() < 0.5:
                img, seg = np.flip(img, axis), np.flip(seg, axis)
        imgs.append(np.ascontiguousarray(img))
        segs.append(np.ascontiguousarray(seg))
    x = torch.from_numpy(np.stack(imgs)[:, None])
    s = torch.from_numpy(np.stack(segs).astype(np.int64))
    y = torch.stack([(s >= 1), (s == 2)], dim=1).float()  # the two regions
    return x, y


# --------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------
def region_loss(logits, target):
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dims = (0, 2, 3, 4)  # batch dice
    inter = (p * target).sum(dims)
    denom = p.sum(dims) + target.sum(dims)
    dc = 1 - (2 * inter + 1.0) / (denom + 1.0)
    return bce + dc.mean()


def train(network, cases: List[Case], iterations: Optional[int], minutes: float, seed: int, batch_size: int,
          log) -> Tuple[int, float]:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng([seed, 7])
    weights = np.array([c.weight for c in cases], float)
    probs = weights / weights.sum()
    # deep-supervision weights as nnU-Net: 1/2^i, lowest resolution off, normalised
    n_ds = N_STAGES - 1
    ds_w = np.array([1 / (2 ** i) for i in range(n_ds)])
    ds_w[-1] = 0
    ds_w = ds_w / ds_w.sum()
    # channels-last 3D convolutions are several times faster on CPU (mostly the backward pass)
    network.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(network.parameters(), lr=3e-3, weight_decay=1e-4)
    network.train()
    start = time.time()
    total = iterations
    calib = 20
    it = 0
    running = None
    while True:
        if total is None and it == calib:  # fix the iteration count from the measured speed
            per_it = (time.time() - start) / calib
            big = np.prod(PATCH) / np.prod(SMALL_PATCH)  # later iterations use the full patch
            total = max(calib + 10, int(minutes * 60 / (per_it * (SMALL_PATCH_FRACTION +
                                                                  (1 - SMALL_PATCH_FRACTION) * big))))
            log(f"  {per_it:.2f} s/iteration -> {total} iterations (use --iterations {total} to reproduce)")
        if total is not None and it >= total:
            break
        frac = it / total if total else 0.0
        lr = 3e-3 * (1 - frac) ** 0.9 if it >= 30 else 3e-3 * (it + 1) / 30
        for g in opt.param_groups:
            g["lr"] = lr
        patch = SMALL_PATCH if (total is None or it < SMALL_PATCH_FRACTION * total) else PATCH
        x, y = make_batch(cases, probs, rng, batch_size, patch)
        outs = network(x.to(memory_format=torch.channels_last_3d))
        loss = 0.0
        for w, o in zip(ds_w, outs):
            if w == 0:
                continue
            t = y if o.shape[2:] == y.shape[2:] else F.interpolate(y, size=o.shape[2:], mode="nearest")
            loss = loss + float(w) * region_loss(o, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 12.0)
        opt.step()
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        it += 1
        if it % 50 == 0 or it == 1:
            log(f"  it {it:5d}/{total or '?'}  loss {value:.4f}  avg {running:.4f}  lr {lr:.2e}  "
                f"patch {patch}  {time.time() - start:6.1f} s")
    return it, time.time() - start


# --------------------------------------------------------------------------------------------------------------
# Inference with the real nnUNetPredictor (the pipeline's way) and validation
# --------------------------------------------------------------------------------------------------------------
def load_predictor(model_dir: Path):
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    model_dir = Path(model_dir)
    plans = json.loads((model_dir / "plans.json").read_text())
    dataset_json = json.loads((model_dir / "dataset.json").read_text())
    params, trainer, mirror = [], TRAINER, (0, 1, 2)
    for fold in sorted(model_dir.glob("fold_*")):
        ck = fold / "checkpoint_final.pth"
        if not ck.exists():
            ck = fold / "checkpoint_best.pth"
        checkpoint = torch.load(str(ck), map_location="cpu", weights_only=False)
        params.append(checkpoint["network_weights"])
        trainer = checkpoint["trainer_name"]
        mirror = checkpoint.get("inference_allowed_mirroring_axes", mirror)
    network, plans_manager, cm = build_network(plans, dataset_json, deep_supervision=False)
    network.load_state_dict(params[0], strict=True)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=False, device=torch.device("cpu"), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, cm, params, dataset_json, trainer, mirror)
    return predictor


def predict_labels(predictor, img) -> np.ndarray:
    """Label map (0/1/2) of a NIfTI image, on its own voxel grid."""
    arr, spacing = to_model_space(img)
    labels = predictor.predict_single_npy_array(arr[None].astype(np.float32), {"spacing": spacing})
    return from_model_space(np.asarray(labels), img)


def validate(model_dir: Path, data_dir: Path, log, n_phantoms: int = 5, seed: int = 0) -> dict:
    import nibabel as nib
    import torch

    torch.set_num_threads(2)
    predictor = load_predictor(model_dir)
    report = {}
    t2 = data_dir / "t2" / "t2_fake_lesion.nii.gz"
    if t2.exists():
        img = nib.load(str(t2))
        predict_labels(predictor, img)  # warm-up
        t0 = time.time()
        lab = predict_labels(predictor, img)
        dt = time.time() - t0
        sc = np.asanyarray(nib.load(str(t2.parent / "t2_fake_lesion_sc_seg.nii.gz")).dataobj) > 0
        les = np.asanyarray(nib.load(str(t2.parent / "t2_fake_lesion_lesion_seg.nii.gz")).dataobj) > 0
        report["t2_fake_lesion"] = {"dice_sc": dice(lab >= 1, sc), "dice_lesion": dice(lab == 2, les),
                                    "sc_voxels": int((lab >= 1).sum()), "lesion_voxels": int((lab == 2).sum()),
                                    "seconds": dt}
        log(f"  t2_fake_lesion: {report['t2_fake_lesion']}")
    t2b = data_dir / "t2" / "t2.nii.gz"
    if t2b.exists():
        img = nib.load(str(t2b))
        ref = np.asanyarray(nib.load(str(t2b.parent / "t2_seg-manual.nii.gz")).dataobj) > 0
        t0 = time.time()
        lab = predict_labels(predictor, img)
        report["t2"] = {"dice_sc": dice(lab >= 1, ref), "lesion_voxels": int((lab == 2).sum()),
                        "seconds": time.time() - t0}
        log(f"  t2: {report['t2']}")
    rows = []
    for i in range(n_phantoms):
        pseed = 900_000 + 1000 * seed + i  # never used for training
        img, ref = make_phantom(pseed)
        ref = np.asanyarray(ref.dataobj)
        t0 = time.time()
        lab = predict_labels(predictor, img)
        row = {"seed": pseed, "axcodes": "".join(nib.aff2axcodes(img.affine)),
               "voxel_size": [round(float(v), 2) for v in img.header.get_zooms()[:3]],
               "shape": list(img.shape), "dice_sc": dice(lab >= 1, ref >= 1),
               "dice_lesion": dice(lab == 2, ref == 2), "lesion_found": bool(((lab == 2) & (ref == 2)).any()),
               "seconds": time.time() - t0}
        rows.append(row)
        log(f"  phantom {row}")
    report["phantoms"] = rows
    return report


# --------------------------------------------------------------------------------------------------------------
def _intensity_props(values: np.ndarray) -> Dict[str, float]:
    v = values.astype(np.float64)
    return {"max": float(v.max()), "mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min()),
            "percentile_00_5": float(np.percentile(v, 0.5)), "percentile_99_5": float(np.percentile(v, 99.5)),
            "std": float(v.std())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=False, type=Path, help="output folder (the trainer folder is made inside)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="training budget instead of a fixed count: the iteration count is fixed from the speed of "
                         "the first 20 iterations and printed (not reproducible across machines)")
    ap.add_argument("--iterations", type=int, default=None,
                    help=f"training iterations (default {RELEASE_ITERATIONS}, the released model's recipe)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--phantoms", type=int, default=40, help="number of training phantoms")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path(DEFAULT_DATA), help="sct_testing_data folder (read only)")
    ap.add_argument("--no-validate", action="store_true")
    ap.add_argument("--validate-only", type=Path, default=None, help="validate an existing trainer folder")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)

    import torch

    torch.set_num_threads(args.threads)
    if args.validate_only is not None:
        report = validate(args.validate_only, args.data, log, seed=args.seed)
        print(json.dumps(report, indent=1, default=float))
        return 0
    if args.out is None:
        ap.error("--out is required")

    t_start = time.time()
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dataset_json = make_dataset_json(0)
    plans = make_plans(PATCH, SPACING, PATCH, _intensity_props(np.arange(10.0)))  # placeholder statistics
    net, plans_manager, cm = build_network(plans, dataset_json, deep_supervision=True)
    log(f"network: PlainConvUNet {sum(p.numel() for p in net.parameters()):,} parameters; patch {PATCH} "
        f"spacing {SPACING}")

    log("preparing data")
    rcases, rstats = ([], [])
    if (args.data / "t2").is_dir():
        rcases, rstats = real_cases(args.data, plans_manager, cm, dataset_json, log)
    else:
        log(f"  warning: {args.data} not found, training on phantoms only")
    pcases, pstats = phantom_cases(args.phantoms, args.seed, plans_manager, cm, dataset_json, log)
    # real images: about half of the patches (t2_fake_lesion most), phantoms the rest
    rw = sum(c.weight for c in rcases)
    if rw:
        for c in rcases:
            c.weight *= REAL_FRACTION / rw
        for c in pcases:
            c.weight = (1 - REAL_FRACTION) / len(pcases)
    cases = rcases + pcases
    stats = rstats + pstats
    fg = np.concatenate([s["fg"] for s in stats if s["fg"] is not None] or [np.arange(10.0)])
    shapes = np.array([c.data.shape for c in cases])
    dataset_json = make_dataset_json(len(stats))
    plans = make_plans(np.median(shapes, 0), np.median([s["spacing"] for s in stats], 0),
                       np.median([s["shape"] for s in stats], 0), _intensity_props(fg))
    log(f"  {len(cases)} training volumes ready in {time.time() - t_start:.1f} s")

    log("training")
    torch.manual_seed(args.seed)
    net, _, _ = build_network(plans, dataset_json, deep_supervision=True)
    iterations = args.iterations
    if iterations is None and args.minutes is None:
        iterations = RELEASE_ITERATIONS
    iters, t_train = train(net, cases, iterations, args.minutes or 0.0, args.seed, args.batch_size, log)
    log(f"  {iters} iterations in {t_train / 60:.1f} min")

    # back to the default memory format; keep the tensors nnU-Net's state dict shares (decoder.encoder.*,
    # all_modules.*) shared, so the checkpoint stores each weight once
    net.to(memory_format=torch.contiguous_format)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    check, _, _ = build_network(plans, dataset_json, deep_supervision=False)
    check.load_state_dict(state, strict=True)

    folder = args.out / MODEL_FOLDER
    (folder / f"fold_{FOLD}").mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=4) + "\n")
    (folder / "plans.json").write_text(json.dumps(plans, indent=4) + "\n")
    torch.save({
        "network_weights": state,
        "trainer_name": TRAINER,
        "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": FOLD, "dataset_json": dataset_json},
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": int(iters),
    }, str(folder / f"fold_{FOLD}" / "checkpoint_final.pth"))
    log(f"wrote {folder} ({time.time() - t_start:.0f} s in all)")

    if not args.no_validate:
        log("validating with nnUNetPredictor")
        report = validate(folder, args.data, log, seed=args.seed)
        report["training"] = {"iterations": iters, "seconds": t_train, "volumes": len(cases)}
        (args.out / "validation.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
