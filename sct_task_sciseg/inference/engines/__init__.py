"""Network engines: PyTorch (nnU-Net's own), OpenVINO and ONNX Runtime (the network exported once)."""
from __future__ import annotations

from typing import Dict, Sequence

from ..settings import Resolved
from .base import NetworkEngine, TorchEngine
from .exported import ExportedEngine, OnnxRuntimeEngine, OpenVINOEngine, cache_dir, weights_key

ENGINES = {"torch": TorchEngine, "openvino": OpenVINOEngine, "onnxruntime": OnnxRuntimeEngine}


def make_engine(network, resolved: Resolved, fold_keys: Dict[int, str], example_shape: Sequence[int]) -> NetworkEngine:
    """The engine for ``resolved.backend`` around ``network``."""
    cls = ENGINES[resolved.backend]
    if issubclass(cls, ExportedEngine):
        return cls(network, resolved, fold_keys, example_shape)
    return cls(network, resolved)


__all__ = ["ENGINES", "ExportedEngine", "NetworkEngine", "OnnxRuntimeEngine", "OpenVINOEngine", "TorchEngine",
           "cache_dir", "make_engine", "weights_key"]
