"""Building a ready predictor for a model folder: network from the plans, weights from the checkpoints, an
engine around the network, handed to nnU-Net's ``manual_initialization`` (SCIseg's ``nnUNetTrainerDA5``
checkpoints load the same way on nnunetv2 2.3.1 … 2.8.x, and nothing imports timm/torchvision)."""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

from ..errors import ModelError
from ..weights.model_folder import network_problem, plans_configuration
from ..weights.plans_names import dataset_problem
from ..log import logger
from ..weights.store import recorded_checkpoints
from . import nnunet_compat
from .checkpoints import load_weights
from .engines import NetworkEngine, OpenVINOEngine, make_engine, weights_key
from .network import build_network, input_channels, network_strides
from .runtime import require_runtime
from .settings import PredictorSettings, Resolved, resolve


@dataclass
class LoadedModel:
    """A predictor ready to run, with what it was built from."""

    predictor: object  # SciSegPredictor, or nnU-Net's stock nnUNetPredictor when the hooks do not fit
    checkpoints: List[Path]
    resolved: Resolved
    engine: NetworkEngine
    hooks: bool  # this package's per-call levers are active


def _stock_fallback(resolved: Resolved, verbose: bool) -> bool:
    """True (with one warning line) when nnU-Net's stock predictor must be used instead of the hooks."""
    problems = nnunet_compat.hook_problems()
    if not problems:
        return False
    lost = " (-fast and -crop are not available: running every tile)" if \
        (resolved.crop != "none" or resolved.tiles != "patch") else ""
    logger.warning(f"nnU-Net's stock predictor is used, same masks, slower{lost}: {problems[0]}"
                   + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    return True


def load_predictor(model_folder: Path, settings: PredictorSettings) -> LoadedModel:
    """An initialised predictor for ``model_folder`` and its checkpoints (imports torch and nnU-Net)."""
    require_runtime()
    import torch

    nn = nnunet_compat.import_nnunet()
    resolved = resolve(settings)
    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    plans = json.loads((model_folder / "plans.json").read_text())
    recorded = recorded_checkpoints(model_folder, settings.checkpoints, settings.folds)
    checkpoints = [path for path, _ in recorded]
    parameters, first = load_weights(recorded)
    problem = network_problem(plans_configuration(plans) or {}, plans)  # before nnU-Net looks up any name
    if problem:
        raise ModelError(f"{model_folder / 'plans.json'}: {problem}")
    problem = dataset_problem(dataset_json)
    if problem:
        raise ModelError(f"{model_folder / 'dataset.json'}: {problem}")
    plans_manager = nn.plans_manager(plans)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old plans format notice
        configuration_manager = plans_manager.get_configuration(
            (first.get("init_args") or {}).get("configuration", "3d_fullres"))
    label_manager = plans_manager.get_label_manager(dataset_json)
    network = _network(configuration_manager.configuration, input_channels(dataset_json),
                       label_manager.num_segmentation_heads, parameters[0], checkpoints[0], resolved, plans)
    parameters[0] = network.state_dict()  # share the network's tensors: one copy of the first fold's weights
    strides = network_strides(configuration_manager.configuration)
    fold_keys = {id(p): weights_key(c) for p, c in zip(parameters, checkpoints)}
    engine = make_engine(network, resolved, fold_keys, [1, input_channels(dataset_json)] +
                         [max(2 * m, 32) for m in strides])
    engine.load_state_dict(parameters[0])
    if settings.verbose:
        for note in resolved.notes:
            logger.info(note)
    stock = _stock_fallback(resolved, settings.verbose)
    if stock:
        predictor_cls = nn.predictor
    else:
        from .predictor import SciSegPredictor
        predictor_cls = SciSegPredictor
        configuration_manager = nnunet_compat.threaded_resampling(configuration_manager, resolved.threads)
    kwargs = nnunet_compat.predictor_kwargs(
        nn.predictor, tile_step_size=settings.tile_step_size, use_gaussian=settings.use_gaussian,
        use_mirroring=settings.use_mirroring, device=torch.device(resolved.device), verbose=settings.verbose)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a notice for every non-CUDA device
        predictor = predictor_cls(**kwargs)
    predictor.manual_initialization(engine, plans_manager, configuration_manager, parameters, dataset_json,
                                    first.get("trainer_name") or "nnUNetTrainer",
                                    first.get("inference_allowed_mirroring_axes"))
    if isinstance(engine, OpenVINOEngine) and len(parameters) == 1:
        engine.forget = lambda state_dict: nnunet_compat.forget_parameters(predictor, state_dict)
    if not stock:
        predictor.configure(resolved.crop, resolved.tiles, strides)
    return LoadedModel(predictor, checkpoints, resolved, engine, hooks=not stock)


def _network(configuration: dict, n_inputs: int, n_outputs: int, weights: dict, checkpoint: Path,
             resolved: Resolved, plans: dict):
    import torch

    network = build_network(configuration, n_inputs, n_outputs, plans,
                            where=str(checkpoint.parent.parent / "plans.json"))
    try:
        network.load_state_dict(weights)
    except RuntimeError as exc:
        raise ModelError(f"{checkpoint}: weights do not fit the network in plans.json ({exc})") from exc
    network.eval()
    if resolved.channels_last:
        network = network.to(memory_format=torch.channels_last_3d)
    return network


def predict_labels(predictor, data_zyx: np.ndarray, spacing_zyx: Sequence[float],
                   return_probabilities: bool = False):
    """nnU-Net's label map (and region probabilities when asked) of one (z, y, x) array with its (z, y, x)
    spacing, from any initialised ``nnUNetPredictor``."""
    return predict(predictor, data_zyx, spacing_zyx, return_probabilities)[0]


def predict(predictor, data_zyx: np.ndarray, spacing_zyx: Sequence[float], return_probabilities: bool = False,
            report=None):
    """(nnU-Net's output, per-call statistics as a dict) of one (z, y, x) array; ``report(stage, done, total)``
    follows the stages (with nnU-Net's stock predictor: only "predict")."""
    import torch

    if hasattr(predictor, "predict_with_stats"):
        out, stats = predictor.predict_with_stats(data_zyx, spacing_zyx, return_probabilities, report)
        return out, stats.as_dict()
    if report is not None:
        report("predict", 0, 0)
    with torch.inference_mode():
        out = predictor.predict_single_npy_array(
            data_zyx[None].astype(np.float32, copy=False), {"spacing": [float(s) for s in spacing_zyx]},
            None, None, return_probabilities)
    return out, {}
