"""The network nnU-Net would build for a model, from its ``plans.json`` (old and new formats), without
nnU-Net's trainer-class search (which imports timm/torchvision on nnunetv2 2.6+) and without resolving any name
from the model by import path: only the allow-listed classes of :mod:`sct_task_sciseg.weights.plans_names`."""
from __future__ import annotations

from copy import deepcopy
from typing import List, Optional, Sequence, Tuple

from ..errors import ModelError
from ..weights.model_folder import network_problem
from ..weights.plans_names import OLD_FORMAT_NETWORKS, network_class, network_parts


def input_channels(dataset_json: dict) -> int:
    """Number of input images per case ("channel_names", or "modality" in older dataset.json files)."""
    return len(dataset_json.get("channel_names", dataset_json.get("modality", {"0": ""})))


def _architecture(configuration: dict) -> Tuple[str, dict, Sequence[str]]:
    """(class path, kwargs, kwargs needing import) from a plans configuration, old or new format."""
    if "architecture" in configuration:
        arch = configuration["architecture"]
        return arch["network_class_name"], deepcopy(arch["arch_kwargs"]), arch["_kw_requires_import"]
    name = configuration["UNet_class_name"]
    classes = OLD_FORMAT_NETWORKS
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


def build_network(configuration: dict, num_input_channels: int, num_outputs: int, plans: Optional[dict] = None,
                  where: str = "plans.json"):
    """The network nnU-Net would build for this configuration, without deep supervision, from the
    allow-listed classes only (every name checked again here: see :func:`network_problem`)."""
    problem = network_problem(configuration, plans)
    if problem:
        raise ModelError(f"{where}: {problem}")
    class_name, kwargs, _ = _architecture(configuration)
    return network_class(class_name)(input_channels=num_input_channels, num_classes=num_outputs,
                                     deep_supervision=False, **network_parts(kwargs))


def network_strides(configuration: dict) -> List[int]:
    """Total downsampling of the network along each axis (tile sizes must be multiples of it)."""
    if "architecture" in configuration:
        strides = configuration["architecture"]["arch_kwargs"]["strides"]
    else:
        strides = configuration["pool_op_kernel_sizes"]
    dim = len(configuration["patch_size"])
    total = [1] * dim
    for s in strides:
        s = [s] * dim if isinstance(s, int) else s
        total = [t * int(v) for t, v in zip(total, s)]
    return total
