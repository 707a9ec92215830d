"""nnU-Net predictor built without nnU-Net's trainer-class search (torch/nnunetv2 imported lazily).

The network is built from ``plans.json`` (old and new plans formats) and the checkpoints loaded here, then
handed to ``nnUNetPredictor.manual_initialization``: SCIseg's ``nnUNetTrainerDA5`` checkpoints load the same
way on nnunetv2 2.3.1 … 2.8.x, and nothing imports timm/torchvision.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import pydoc
import warnings
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .errors import ModelError

for _var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):  # silence nnU-Net's import warnings
    os.environ.setdefault(_var, os.devnull)


@dataclass
class PredictorSettings:
    tile_step_size: float = 0.5
    use_gaussian: bool = True
    use_mirroring: bool = False
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: Optional[int] = None
    folds: Optional[Sequence[int]] = None
    checkpoints: Tuple[str, ...] = ("checkpoint_final.pth", "checkpoint_best.pth")
    verbose: bool = False


def nnunet_version() -> str:
    from importlib.metadata import version
    return version("nnunetv2")


def _resolve_device(name: str):
    import torch
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("-device cuda: no CUDA GPU is available to torch")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("-device mps: Apple MPS is not available to torch")
    return torch.device(name)


def _architecture(configuration: dict) -> Tuple[str, dict, Sequence[str]]:
    """(class path, kwargs, kwargs needing import) from a plans configuration, old or new format."""
    if "architecture" in configuration:
        arch = configuration["architecture"]
        return arch["network_class_name"], deepcopy(arch["arch_kwargs"]), arch["_kw_requires_import"]
    name = configuration["UNet_class_name"]
    classes = {"PlainConvUNet": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
               "ResidualEncoderUNet": "dynamic_network_architectures.architectures.residual_unet."
                                      "ResidualEncoderUNet"}
    if name not in classes:
        raise ModelError(f"plans.json: unsupported architecture {name}")
    n_stages = len(configuration["n_conv_per_stage_encoder"])
    dim = len(configuration["patch_size"])
    blocks = "n_conv_per_stage" if name == "PlainConvUNet" else "n_blocks_per_stage"
    kwargs = {
        "n_stages": n_stages,
        "features_per_stage": [min(configuration["UNet_base_num_features"] * 2 ** i,
                                   configuration["unet_max_num_features"]) for i in range(n_stages)],
        "conv_op": f"torch.nn.Conv{dim}d",
        "kernel_sizes": configuration["conv_kernel_sizes"],
        "strides": configuration["pool_op_kernel_sizes"],
        blocks: configuration["n_conv_per_stage_encoder"],
        "n_conv_per_stage_decoder": configuration["n_conv_per_stage_decoder"],
        "conv_bias": True,
        "norm_op": f"torch.nn.InstanceNorm{dim}d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    return classes[name], kwargs, ("conv_op", "norm_op", "dropout_op", "nonlin")


def build_network(configuration: dict, num_input_channels: int, num_outputs: int):
    """The network nnU-Net would build for this configuration, without deep supervision."""
    class_name, kwargs, to_import = _architecture(configuration)
    for key in to_import:
        if kwargs.get(key) is not None:
            kwargs[key] = pydoc.locate(kwargs[key])
    network_class = pydoc.locate(class_name)
    if network_class is None:
        raise ModelError(f"plans.json: cannot import network class {class_name}")
    return network_class(input_channels=num_input_channels, num_classes=num_outputs,
                         deep_supervision=False, **kwargs)


def _load_checkpoint(path: Path) -> dict:
    import torch
    kwargs = {"map_location": torch.device("cpu")}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False  # nnU-Net checkpoints hold numpy/plain objects
    try:
        return torch.load(str(path), **kwargs)
    except Exception as exc:  # torch raises many types for a damaged file
        raise ModelError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc


def fold_checkpoints(model_folder: Path, settings: PredictorSettings) -> List[Path]:
    folds = ([model_folder / f"fold_{f}" for f in settings.folds] if settings.folds
             else sorted(model_folder.glob("fold_*")))
    found = []
    for fold in folds:
        ckpt = next((fold / c for c in settings.checkpoints if (fold / c).is_file()), None)
        if ckpt is None:
            raise ModelError(f"{fold}: no {' or '.join(settings.checkpoints)}")
        found.append(ckpt)
    if not found:
        raise ModelError(f"{model_folder}: no fold_* folder")
    return found


def load_predictor(model_folder: Path, settings: PredictorSettings):
    """An initialised ``nnUNetPredictor`` for ``model_folder`` and the checkpoints it uses."""
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    device = _resolve_device(settings.device)
    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    plans = json.loads((model_folder / "plans.json").read_text())
    checkpoints = fold_checkpoints(model_folder, settings)
    loaded = [_load_checkpoint(c) for c in checkpoints]
    first = loaded[0]
    configuration_name = first.get("init_args", {}).get("configuration", "3d_fullres")
    plans_manager = PlansManager(plans)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old plans format notice
        configuration_manager = plans_manager.get_configuration(configuration_name)
    label_manager = plans_manager.get_label_manager(dataset_json)
    n_inputs = len(dataset_json.get("channel_names", dataset_json.get("modality", {"0": ""})))
    network = build_network(configuration_manager.configuration, n_inputs, label_manager.num_segmentation_heads)
    parameters = [ck["network_weights"] for ck in loaded]
    try:
        network.load_state_dict(parameters[0])
    except RuntimeError as exc:
        raise ModelError(f"{checkpoints[0]}: weights do not fit the network in plans.json ({exc})") from exc

    init = inspect.signature(nnUNetPredictor.__init__).parameters
    on_device = "perform_everything_on_device" if "perform_everything_on_device" in init \
        else "perform_everything_on_gpu"
    kwargs = {"tile_step_size": settings.tile_step_size, "use_gaussian": settings.use_gaussian,
              "use_mirroring": settings.use_mirroring, on_device: device.type == "cuda",
              "device": device, "verbose": False, "verbose_preprocessing": False}
    if "allow_tqdm" in init:
        kwargs["allow_tqdm"] = bool(settings.verbose)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a notice for every non-CUDA device
        predictor = nnUNetPredictor(**kwargs)
    mirror_axes = first.get("inference_allowed_mirroring_axes")
    predictor.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                    first.get("trainer_name", "nnUNetTrainer"), mirror_axes)
    return predictor, checkpoints


def predict_labels(predictor, data_zyx: np.ndarray, spacing_zyx: Sequence[float],
                   return_probabilities: bool = False):
    """Label map (and region probabilities when asked) of one (z, y, x) array with its (z, y, x) spacing."""
    import torch
    with torch.inference_mode():
        out = predictor.predict_single_npy_array(
            data_zyx[None].astype(np.float32, copy=False), {"spacing": [float(s) for s in spacing_zyx]},
            None, None, return_probabilities)
    return out
