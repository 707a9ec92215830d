"""Every use of nnU-Net's internals, in one module, checked once against the installed nnunetv2.

This package drives nnU-Net's own predictor (``nnUNetPredictor``) and relies on these details of it:

1. **Import without torch._dynamo.** ``nnunetv2.inference.predict_from_raw_data`` imports ``torch._dynamo`` for
   ``isinstance`` checks against ``OptimizedModule`` only (≈ 1.8 s and 80 MB at every start). A stand-in module
   takes its place during that one import; not done when ``nnUNet_compile`` asks nnU-Net to compile or
   torch._dynamo is already loaded; if the import fails with the stand-in it is retried the ordinary way.
   nnU-Net's path variables and worker count are set for the duration of the import only.
2. **Per-call hooks** overridden by :class:`sct_task_sciseg.inference.predictor.SciSegPredictor`:
   ``predict_single_npy_array``, ``predict_logits_from_preprocessed_data(data)`` and
   ``_internal_get_sliding_window_slicers(image_size)``, with the signatures in :data:`HOOK_PARAMETERS`.
3. **The tile size is read from** ``self.configuration_manager.patch_size`` by the sliding window (-fast's large
   tiles set it for one call, :func:`patch_size`).
4. **The Gaussian tile weights** come from ``compute_gaussian``, an ``lru_cache`` that a warm-up thread fills
   with the very same call (:func:`prefill_gaussian`).
5. **Resampling back** goes through ``ConfigurationManager.resampling_fn_probabilities`` (a property), run one
   channel per thread (:func:`threaded_resampling`).
6. ``manual_initialization``'s parameters and the constructor's ``perform_everything_on_device`` (2.4+) /
   ``perform_everything_on_gpu`` (2.3) and ``allow_tqdm`` (:func:`predictor_kwargs`); the ensemble is
   ``predictor.list_of_parameters``.

:func:`hook_problems` checks 2-5 once per process. When anything differs, or nnunetv2 is newer than
:data:`NEWEST_TESTED`, the loader uses nnU-Net's stock predictor instead (same masks, slower) and says so in
one warning line: a new nnU-Net never silently changes masks.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import sys
import types
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .runtime import NEWEST_TESTED, installed_version, version_tuple

_PREDICTOR_MODULE = "nnunetv2.inference.predict_from_raw_data"
HOOK_PARAMETERS: Dict[str, Tuple[str, ...]] = {
    "predict_single_npy_array": ("self", "input_image", "image_properties", "segmentation_previous_stage",
                                 "output_file_truncated", "save_or_return_probabilities"),
    "predict_logits_from_preprocessed_data": ("self", "data"),
    "_internal_get_sliding_window_slicers": ("self", "image_size"),
    "manual_initialization": ("self", "network", "plans_manager", "configuration_manager", "parameters",
                              "dataset_json", "trainer_name", "inference_allowed_mirroring_axes"),
}


@dataclass(frozen=True)
class NnUNet:
    """nnU-Net's classes this package uses, and the installed version."""

    predictor: type  # nnUNetPredictor
    plans_manager: type  # PlansManager
    configuration_manager: type  # ConfigurationManager
    version: str
    distribution: str


def _dynamo_stand_in():
    import torch

    module = types.ModuleType("torch._dynamo")

    class OptimizedModule(torch.nn.Module):
        """Stand-in: never instantiated (nothing here is compiled with torch.compile)."""

    module.OptimizedModule = OptimizedModule
    return module


def _compile_requested() -> bool:
    return os.environ.get("nnUNet_compile", "").lower() in ("true", "1", "t")


@contextlib.contextmanager
def _import_environment() -> Iterator[None]:
    """nnU-Net's variables, set for its import only: no path warnings, no cap of 8 worker threads."""
    from ..machine import cores

    wanted = {"nnUNet_raw": os.devnull, "nnUNet_preprocessed": os.devnull, "nnUNet_results": os.devnull,
              "nnUNet_def_n_proc": str(cores())}
    added = [k for k in wanted if k not in os.environ]
    for k in added:
        os.environ[k] = wanted[k]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _import_all() -> Tuple[type, type, type]:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
    return nnUNetPredictor, PlansManager, ConfigurationManager


@lru_cache(maxsize=1)
def import_nnunet() -> NnUNet:
    """nnU-Net's predictor, plans and configuration classes, imported without torch._dynamo (see above)."""
    import torch  # noqa: F401 - the real torch, before any stand-in exists

    with _import_environment():
        light = (_PREDICTOR_MODULE not in sys.modules and "torch._dynamo" not in sys.modules
                 and not _compile_requested())
        if light:
            before = set(sys.modules)
            stand_in = _dynamo_stand_in()
            sys.modules["torch._dynamo"] = stand_in
            try:
                _import_all()
            except ImportError:  # something needed more of torch._dynamo: forget this attempt
                for name in set(sys.modules) - before:
                    del sys.modules[name]
            finally:
                if sys.modules.get("torch._dynamo") is stand_in:
                    del sys.modules["torch._dynamo"]
        classes = _import_all()
    dist, ver = installed_version()
    return NnUNet(*classes, version=ver, distribution=dist)


# -- checks ---------------------------------------------------------------------------------------------

def _parameters(fn) -> Tuple[str, ...]:
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


def _source(fn) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ""


def _signature_problems(predictor_cls: type) -> List[str]:
    problems = []
    for name, expected in HOOK_PARAMETERS.items():
        fn = getattr(predictor_cls, name, None)
        got = _parameters(fn) if fn is not None else ()
        if got[:len(expected)] != expected:
            problems.append(f"{name}{got or ' (missing)'} is not {name}{expected}")
    return problems


def _source_problems(nn: NnUNet) -> List[str]:
    problems = []
    window = _source(getattr(nn.predictor, "predict_sliding_window_return_logits", None))
    inner = _source(getattr(nn.predictor, "_internal_predict_sliding_window_return_logits", None))
    if "self._internal_get_sliding_window_slicers(" not in window:
        problems.append("the sliding window no longer asks _internal_get_sliding_window_slicers for its tiles")
    if "self.configuration_manager.patch_size" not in window + inner:
        problems.append("the sliding window no longer reads configuration_manager.patch_size")
    if not isinstance(getattr(nn.configuration_manager, "resampling_fn_probabilities", None), property):
        problems.append("ConfigurationManager.resampling_fn_probabilities is not a property")
    try:
        from nnunetv2.inference.sliding_window_prediction import compute_gaussian
    except ImportError:
        compute_gaussian = None
    if compute_gaussian is None or not hasattr(compute_gaussian, "cache_info") or \
            "compute_gaussian(tuple(self.configuration_manager.patch_size), sigma_scale=1. / 8" not in inner:
        problems.append("compute_gaussian is not the cached call this package warms up")
    return problems


@lru_cache(maxsize=1)
def hook_problems() -> Tuple[str, ...]:
    """Why this package's hooks do not fit the installed nnunetv2 (empty when they do)."""
    nn = import_nnunet()
    problems: List[str] = []
    ver = version_tuple(nn.version) if nn.version else ()
    if ver and ver > NEWEST_TESTED:
        problems.append(f"{nn.distribution} {nn.version} is newer than the newest tested "
                        f"({'.'.join(map(str, NEWEST_TESTED))})")
    problems += _signature_problems(nn.predictor)
    problems += _source_problems(nn)
    return tuple(problems)


# -- the hooks ------------------------------------------------------------------------------------------

def predictor_kwargs(predictor_cls: type, *, tile_step_size: float, use_gaussian: bool, use_mirroring: bool,
                     device, verbose: bool) -> dict:
    """Constructor arguments for this nnunetv2's ``nnUNetPredictor``."""
    init = inspect.signature(predictor_cls.__init__).parameters
    on_device = "perform_everything_on_device" if "perform_everything_on_device" in init \
        else "perform_everything_on_gpu"
    kwargs = {"tile_step_size": tile_step_size, "use_gaussian": use_gaussian, "use_mirroring": use_mirroring,
              on_device: device.type == "cuda", "device": device, "verbose": False,
              "verbose_preprocessing": False}
    if "allow_tqdm" in init:
        kwargs["allow_tqdm"] = bool(verbose)
    return kwargs


def prefill_gaussian(patch: Sequence[int]) -> None:
    """Fill nnU-Net's cache of the Gaussian tile weights with the call its CPU sliding window makes."""
    import torch
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    compute_gaussian(tuple(int(p) for p in patch), sigma_scale=1. / 8, value_scaling_factor=10,
                     device=torch.device("cpu"))


@contextlib.contextmanager
def patch_size(predictor, tile: Optional[Sequence[int]]) -> Iterator[None]:
    """For one call, the sliding window of ``predictor`` uses tiles of ``tile`` (None: unchanged)."""
    if tile is None:
        yield
        return
    saved = predictor.configuration_manager
    cm = type(saved).__new__(type(saved))
    cm.__dict__.update(saved.__dict__)
    cm.configuration = dict(saved.configuration, patch_size=[int(t) for t in tile])
    predictor.configuration_manager = cm
    try:
        yield
    finally:
        predictor.configuration_manager = saved


def _per_channel_threads(fn, threads: int):
    """``fn`` (one of nnU-Net's resampling functions, which treat every channel on its own) run on each
    channel in its own thread: scipy releases the GIL, so on n cores the region probabilities are resampled
    back ≈ n times faster, with identical values."""
    def run(data, *args, **kwargs):
        n = int(data.shape[0])
        if n < 2 or threads < 2:
            return fn(data, *args, **kwargs)
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(threads, n), thread_name_prefix="sciseg-resample") as pool:
            parts = list(pool.map(lambda c: fn(data[c:c + 1], *args, **kwargs), range(n)))
        if isinstance(parts[0], np.ndarray):
            return np.concatenate(parts)
        import torch
        return torch.cat(parts)
    return run


def _restore_as(cls: type, state: dict):
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


@lru_cache(maxsize=None)
def _threaded_class(base: type) -> type:
    class ThreadedResampling(base):
        """nnU-Net's configuration, its probabilities resampled back one channel per thread."""

        sciseg_threads = 1

        @property
        def resampling_fn_probabilities(self):
            return _per_channel_threads(super().resampling_fn_probabilities, self.sciseg_threads)

        def __reduce__(self):  # nnU-Net's worker processes get a plain one, same state
            state = {k: v for k, v in self.__dict__.items() if k != "sciseg_threads"}
            return _restore_as, (base, state)

    ThreadedResampling.__name__ = ThreadedResampling.__qualname__ = base.__name__
    return ThreadedResampling


def threaded_resampling(configuration_manager, threads: int):
    """A copy of ``configuration_manager`` whose ``resampling_fn_probabilities`` runs each channel in its own
    thread (the original is not changed); the original itself when there is nothing to gain."""
    base = type(configuration_manager)
    if threads < 2 or not isinstance(getattr(base, "resampling_fn_probabilities", None), property):
        return configuration_manager
    copy = _threaded_class(base).__new__(_threaded_class(base))
    copy.__dict__.update(configuration_manager.__dict__)
    copy.sciseg_threads = int(threads)
    return copy


def forget_parameters(predictor, state_dict) -> dict:
    """Replace ``state_dict`` in the predictor's ensemble (``list_of_parameters``, which nnU-Net loads into
    the network before every prediction) with an empty placeholder, so that its tensors can be freed; returns
    the placeholder (the engine recognises it and keeps its compiled weights)."""
    placeholder: dict = {}
    params = predictor.list_of_parameters
    for i, p in enumerate(params):
        if p is state_dict:
            params[i] = placeholder
    return placeholder
