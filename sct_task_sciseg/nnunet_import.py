"""Import nnU-Net's inference code without ``torch._dynamo``.

``nnunetv2.inference.predict_from_raw_data`` imports ``torch._dynamo`` for ``isinstance`` checks against
``OptimizedModule`` (a network wrapped by ``torch.compile``, which this package never does). Loading
torch._dynamo (and sympy with it) costs ≈ 1.8 s of start-up and ≈ 80 MB of resident memory on the CPU build
of torch 2.13, for every run.

``torch._dynamo`` is therefore replaced by a stand-in module for the duration of that import only: nnU-Net's
``OptimizedModule`` then names a class no network is an instance of, and everything imported later sees the
real torch._dynamo. Not done when ``nnUNet_compile`` asks nnU-Net to compile or when torch._dynamo is already
loaded; if the import fails with the stand-in, it is retried the ordinary way.
"""
from __future__ import annotations

import os
import sys
import types
import warnings
from typing import Tuple

_PREDICTOR_MODULE = "nnunetv2.inference.predict_from_raw_data"


def _dynamo_stand_in():
    import torch

    module = types.ModuleType("torch._dynamo")

    class OptimizedModule(torch.nn.Module):
        """Stand-in: never instantiated (nothing here is compiled with torch.compile)."""

    module.OptimizedModule = OptimizedModule
    return module


def _compile_requested() -> bool:
    return os.environ.get("nnUNet_compile", "").lower() in ("true", "1", "t")


def import_nnunet() -> Tuple[type, type, type]:
    """(nnUNetPredictor, PlansManager, ConfigurationManager)."""
    import torch  # noqa: F401 - the real torch, before any stand-in exists

    light = (_PREDICTOR_MODULE not in sys.modules and "torch._dynamo" not in sys.modules
             and not _compile_requested())
    if light:
        before = set(sys.modules)
        stand_in = _dynamo_stand_in()
        sys.modules["torch._dynamo"] = stand_in
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _import_all()
        except ImportError:  # something needed more of torch._dynamo: forget this attempt, import normally
            for name in set(sys.modules) - before:
                del sys.modules[name]
        finally:
            if sys.modules.get("torch._dynamo") is stand_in:
                del sys.modules["torch._dynamo"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _import_all()


def _import_all():
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
    return nnUNetPredictor, PlansManager, ConfigurationManager
