"""The names a model may hold where nnU-Net turns a name into code: an explicit allow-list of exact names.

nnU-Net resolves names from a model folder by import path (``pydoc.locate`` of the network class and of
``arch_kwargs``' ``conv_op``/``norm_op``/``dropout_op``/``nonlin``) or by searching its own package
(preprocessor, resampling functions, normalisation schemes, label manager, image reader, planner, and the
checkpoint's ``trainer_name``). A dotted name such as ``torch.nn.modules.module.torch.os.system`` would run
whatever it names. Here every such name must be one of the exact names below (what nnU-Net's planners and
trainers write), checked at install and again before the network is built; the network is built from classes
this module looks up in its own tables (:func:`network_parts`), never from an import path in the model.
"""
from __future__ import annotations

import importlib
from typing import Dict, Iterator, Optional, Tuple

_DNA = "dynamic_network_architectures.architectures.unet"
# network_class_name -> (module, class) of dynamic_network_architectures
NETWORK_CLASSES: Dict[str, Tuple[str, str]] = {
    f"{_DNA}.PlainConvUNet": (_DNA, "PlainConvUNet"),
    f"{_DNA}.ResidualEncoderUNet": (_DNA, "ResidualEncoderUNet"),
}
OLD_FORMAT_NETWORKS = {"PlainConvUNet": f"{_DNA}.PlainConvUNet",
                       "ResidualEncoderUNet": f"{_DNA}.ResidualEncoderUNet"}


def _torch(module: str, *names: str) -> Dict[str, str]:
    """Both spellings nnU-Net writes (``torch.nn.X`` and ``torch.nn.modules.<module>.X``) -> ``X``."""
    return {**{f"torch.nn.{n}": n for n in names}, **{f"torch.nn.modules.{module}.{n}": n for n in names}}


# arch_kwargs key -> allowed name -> attribute of torch.nn
TORCH_PARTS: Dict[str, Dict[str, str]] = {
    "conv_op": _torch("conv", "Conv1d", "Conv2d", "Conv3d"),
    "norm_op": {**_torch("instancenorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"),
                **_torch("batchnorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d"),
                **_torch("normalization", "GroupNorm")},
    "dropout_op": _torch("dropout", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d"),
    "nonlin": _torch("activation", "LeakyReLU", "ReLU", "PReLU", "ELU", "GELU"),
}
# names nnU-Net looks up inside its own package at inference (plans configuration / plans / checkpoint)
CONFIGURATION_NAMES = {
    "preprocessor_name": {"DefaultPreprocessor"},
    "resampling_fn_data": {"resample_data_or_seg_to_shape", "resample_torch_fornnunet", "no_resampling_hack"},
    "resampling_fn_seg": {"resample_data_or_seg_to_shape", "resample_torch_fornnunet", "no_resampling_hack"},
    "resampling_fn_probabilities": {"resample_data_or_seg_to_shape", "resample_torch_fornnunet",
                                    "no_resampling_hack"},
    "normalization_schemes": {"ZScoreNormalization", "CTNormalization", "NoNormalization",
                              "RescaleTo01Normalization", "RGBTo01Normalization"},
}
PLANS_NAMES = {
    "label_manager": {"LabelManager"},
    "image_reader_writer": {"SimpleITKIO", "SimpleITKIOWithReorient", "NibabelIO", "NibabelIOWithReorient",
                            "NaturalImage2DIO", "Tiff3DIO"},
    "experiment_planner_used": {"ExperimentPlanner", "ResEncUNetPlanner", "nnUNetPlannerResEncM",
                                "nnUNetPlannerResEncL", "nnUNetPlannerResEncXL", "nnUNetPlanner_torchres",
                                "nnUNetPlannerResEncL_torchres", "nnUNetPlannerResEncL_torchres_sepz",
                                "nnUNetPlannerResEncL_noResampling"},
}
_EPOCHS = ("1epoch", "5epochs", "10epochs", "20epochs", "50epochs", "100epochs", "250epochs", "500epochs",
           "750epochs", "2000epochs", "4000epochs", "8000epochs")
TRAINERS = {"nnUNetTrainer", "nnUNetTrainerDA5", "nnUNetTrainerDA5ord0", "nnUNetTrainerDA5Segord0",
            "nnUNetTrainerDA5_10epochs", "nnUNetTrainerNoDA", "nnUNetTrainerNoMirroring", "nnUNetTrainerBN",
            "nnUNetTrainerNoDeepSupervision", "nnUNetTrainerDiceCELoss_noSmooth", "nnUNetTrainerCELoss",
            "nnUNetTrainerDiceLoss", "nnUNetTrainerTopk10Loss", "nnUNetTrainerDiceTopK10Loss",
            "nnUNetTrainerCosAnneal", "nnUNetTrainer_DASegOrd0", "nnUNetTrainer_DASegOrd0_NoMirroring",
            "nnUNetTrainer_250epochs_NoMirroring", "nnUNetTrainer_2000epochs_NoMirroring",
            "nnUNetTrainer_4000epochs_NoMirroring", "nnUNetTrainer_8000epochs_NoMirroring",
            *(f"nnUNetTrainer_{e}" for e in _EPOCHS)}


def _refused(key: str, value: object, what: str) -> str:
    return f"{key} {value!r} is not {what} (refused: a model may only name the classes nnU-Net's planners write)"


def _architecture_problems(arch: object) -> Iterator[str]:
    if not isinstance(arch, dict) or not isinstance(arch.get("arch_kwargs"), dict):
        yield "malformed architecture entry"
        return
    name = arch.get("network_class_name")
    if not isinstance(name, str) or name not in NETWORK_CLASSES:
        yield _refused("network_class_name", name, "a class of dynamic_network_architectures")
    kwargs = arch["arch_kwargs"]
    for key in arch.get("_kw_requires_import") or ():
        if key not in TORCH_PARTS:
            yield _refused("_kw_requires_import", key, "one of " + ", ".join(TORCH_PARTS))
    for key, allowed in TORCH_PARTS.items():
        value = kwargs.get(key)
        if value is not None and value not in allowed:
            yield _refused(f"architecture {key}", value, "an allowed torch.nn class")


def names_problem(plans: dict, configuration: dict) -> Optional[str]:
    """The first name in ``plans`` (and its merged ``configuration``) outside the allow-list, or None."""
    arch = configuration.get("architecture")
    if arch is None:
        name = configuration.get("UNet_class_name")
        if name not in OLD_FORMAT_NETWORKS:
            return _refused("UNet_class_name", name, "a network class of nnU-Net")
    else:
        problem = next(_architecture_problems(arch), None)
        if problem:
            return problem
    for source, table in ((configuration, CONFIGURATION_NAMES), (plans, PLANS_NAMES)):
        for key, allowed in table.items():
            if key not in source:
                continue
            value = source[key]
            values = value if isinstance(value, list) and key == "normalization_schemes" else [value]
            bad = next((v for v in values if not (isinstance(v, str) and v in allowed)), None)
            if bad is not None or not values:
                return _refused(key, bad, "a name nnU-Net may look up")
    return None


def dataset_problem(dataset: dict) -> Optional[str]:
    """``dataset.json``'s ``overwrite_image_reader_writer`` (a reader class nnU-Net looks up) outside the list."""
    value = dataset.get("overwrite_image_reader_writer", "None") if isinstance(dataset, dict) else "None"
    if value == "None" or value in PLANS_NAMES["image_reader_writer"]:
        return None
    return _refused("overwrite_image_reader_writer", value, "a name nnU-Net may look up")


def trainer_problem(trainer: object) -> Optional[str]:
    if isinstance(trainer, str) and trainer in TRAINERS:
        return None
    return _refused("trainer_name", trainer, "one of nnU-Net's trainer classes")


def network_class(name: str) -> type:
    """The allow-listed network class ``name`` (looked up in this module's table: KeyError otherwise)."""
    module, attr = NETWORK_CLASSES[name]
    return getattr(importlib.import_module(module), attr)


def network_parts(kwargs: dict) -> dict:
    """``kwargs`` with each allow-listed torch part name replaced by its class (KeyError for any other name)."""
    import torch

    out = dict(kwargs)
    for key, allowed in TORCH_PARTS.items():
        if out.get(key) is not None:
            out[key] = getattr(torch.nn, allowed[out[key]])
    return out
