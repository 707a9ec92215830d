"""The network exported once (ONNX, then OpenVINO IR) and cached on disk by weights and versions."""
from __future__ import annotations

import hashlib
import inspect
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ...environment import get
from ...errors import ModelError
from ..export_view import VIEW_VERSION, export_view
from ..settings import Resolved
from .base import NetworkEngine

Runner = Callable[[np.ndarray], np.ndarray]


def cache_dir() -> Path:
    """Where exported networks (OpenVINO IR, ONNX) are kept: $SCISEG_CACHE_DIR, else the user cache folder."""
    env = get("SCISEG_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs
    return Path(platformdirs.user_cache_dir("sct_task_sciseg", appauthor=False))


def weights_key(checkpoint: Path) -> str:
    """Cache key of a checkpoint file's weights (path, size, modification time)."""
    st = checkpoint.stat()
    return hashlib.sha256(f"{checkpoint.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()


class ExportedEngine(NetworkEngine):
    """Base of the OpenVINO and ONNX Runtime engines: one compiled network per tile shape (at most two kept),
    rebuilt when the weights change (ensembles of several folds)."""

    def __init__(self, network: torch.nn.Module, resolved: Resolved, fold_keys: Dict[int, str],
                 example_shape: Sequence[int]):
        super().__init__(network, resolved)
        self.fold_keys = fold_keys  # id(state dict) → key of its checkpoint file (export cache)
        self.weights_key = ""
        self.example_shape = tuple(int(s) for s in example_shape)
        self._exported = None  # backend model / session for the current weights
        self._compiled: Dict[Tuple[int, ...], Runner] = {}
        self._compile_lock = threading.Lock()

    def weights_changed(self, state_dict) -> None:
        self._exported, self._compiled = None, {}  # exported graphs hold the previous weights
        self.weights_key = self.fold_keys.get(id(state_dict), "")

    def run(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        runner = self._compiled_for(tuple(x.shape))
        self.compile_seconds += time.perf_counter() - t0  # compiling, or waiting for prepare() to finish
        out = runner(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32))
        return torch.from_numpy(np.asarray(out)).to(x.device)

    def _compiled_for(self, shape: Tuple[int, ...]) -> Runner:
        with self._compile_lock:  # prepare() may be compiling this shape in another thread
            runner = self._compiled.get(shape)
            if runner is None:
                runner = self.compile(shape)
                self._compiled = {shape: runner, **dict(list(self._compiled.items())[:1])}  # keep ≤ 2 shapes
            return runner

    def prepare(self, shape: Sequence[int]) -> None:
        if self._loaded is None or tuple(shape) in self._compiled:
            return
        try:
            self._compiled_for(tuple(int(v) for v in shape))
        except Exception:  # noqa: BLE001 - the forward pass compiles again and reports the error
            pass

    def compile(self, shape: Tuple[int, ...]) -> Runner:
        raise NotImplementedError

    def cache_path(self, suffix: str) -> Path:
        from importlib.metadata import version
        if not self.weights_key:  # weights not from a checkpoint file: key on their values
            h = hashlib.sha256()
            for k, v in self.network.state_dict().items():
                h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
            self.weights_key = h.hexdigest()
        backend = self.resolved.backend
        key = hashlib.sha256("|".join([
            self.weights_key, backend, version(backend), torch.__version__, type(self.network).__name__,
            repr(self.example_shape), VIEW_VERSION]).encode()).hexdigest()[:24]
        return cache_dir() / backend / key / f"network{suffix}"

    def onnx_file(self) -> Path:
        """The network exported to ONNX (with dynamic spatial axes), exported on first use."""
        path = self.cache_path(".onnx")
        if path.is_file():
            return path
        if self.weights_dropped():
            raise ModelError(f"{path.parent}: the exported network was removed during the run")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{os.getpid()}.{path.name}")
        kwargs = {"input_names": ["x"], "output_names": ["y"], "opset_version": 17,
                  "dynamic_axes": {"x": {2: "d0", 3: "d1", 4: "d2"}, "y": {2: "d0", 3: "d1", 4: "d2"}}}
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:
            kwargs["dynamo"] = False
        was_training = self.network.training
        self.network.eval()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(export_view(self.network), torch.zeros(self.example_shape), str(tmp), **kwargs)
        self.network.train(was_training)
        os.replace(tmp, path)
        return path

    def weights_dropped(self) -> bool:
        return False


class OnnxRuntimeEngine(ExportedEngine):
    """ONNX Runtime on the CPU, fp32."""

    def compile(self, shape: Tuple[int, ...]) -> Runner:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(self.resolved.threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = self._exported or ort.InferenceSession(str(self.onnx_file()), opts,
                                                         providers=["CPUExecutionProvider"])
        self._exported = session
        return lambda x: session.run(None, {"x": x})[0]


class OpenVINOEngine(ExportedEngine):
    """OpenVINO on the CPU, fp32 or bf16 (native-bf16 CPUs). With one fold, PyTorch's copy of the weights is
    freed once compiled (``forget``, set by the loader, drops nnU-Net's reference to them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.forget: Optional[Callable[[dict], dict]] = None  # one fold: nnU-Net's reference → placeholder
        self._dropped = False

    def weights_dropped(self) -> bool:
        return self._dropped

    def _model(self):
        import openvino as ov
        if self._exported is None:
            path = self.cache_path(".xml")
            core = ov.Core()
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                model = core.read_model(str(self.onnx_file()))
                tmp = path.with_name(f".{os.getpid()}.{path.name}")
                ov.save_model(model, str(tmp), compress_to_fp16=False)
                os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
                os.replace(tmp, path)
            self._exported = core.read_model(str(path))
        return self._exported

    def compile(self, shape: Tuple[int, ...]) -> Runner:
        import openvino as ov
        model = self._model().clone()
        model.reshape({model.inputs[0]: ov.PartialShape(list(shape))})
        cfg = {"INFERENCE_NUM_THREADS": int(self.resolved.threads), "PERFORMANCE_HINT": "LATENCY",
               "INFERENCE_PRECISION_HINT": "bf16" if self.resolved.precision == "bf16" else "f32"}
        compiled = ov.Core().compile_model(model, "CPU", cfg)
        self._exported = None  # the compiled model holds its own copy of the weights
        self._drop_torch_weights()
        requests = []

        def run(x):
            if not requests:  # the request owns the activation memory; release() frees it
                requests.append(compiled.create_infer_request())
            return requests[0].infer({0: x})[compiled.outputs[0]].copy()
        return run

    def _drop_torch_weights(self) -> None:
        """With one fold and the network exported to disk, PyTorch's copy of the weights is never used
        again: free it (≈ 0.12 GB for SCIseg)."""
        if self.forget is None or self._dropped or self._loaded is None:
            return
        self._loaded = self.forget(self._loaded)
        for module in self.network.modules():
            for name, _tensor in list(module.named_parameters(recurse=False)):
                setattr(module, name, torch.nn.Parameter(torch.empty(0), requires_grad=False))
        self._dropped = True

    def release(self) -> None:
        """Free the working memory OpenVINO keeps with a compiled network (≈ 1 GB for SCIseg's tile), so
        that it does not add to nnU-Net's resampling afterwards. Recompiling from the cached IR costs about a
        second; batches keep the compiled network (``keep_compiled``)."""
        if not self.keep_compiled:
            with self._compile_lock:
                self._compiled = {}
