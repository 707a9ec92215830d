"""nnU-Net predictor built without nnU-Net's trainer-class search (torch/nnunetv2 imported lazily), with speed
levers hooked around nnU-Net's own sliding-window engine.

The network is built from ``plans.json`` (old and new plans formats) and the checkpoints loaded here, then
handed to ``nnUNetPredictor.manual_initialization``: SCIseg's ``nnUNetTrainerDA5`` checkpoints load the same
way on nnunetv2 2.3.1 … 2.8.x, and nothing imports timm/torchvision.

Speed levers (each measured by ``benchmarks/run_benchmark.py``; see benchmarks/README.md):

- ``precision``: ``fp32`` is nnU-Net's own PyTorch path, voxel-identical to ``sct_deepseg``; ``bf16``/``fp16``
  run the network under autocast; ``auto`` picks bf16 only on CPUs with native bf16 (avx512_bf16/amx_bf16),
  fp16 autocast on CUDA (what nnU-Net itself does there), else fp32.
- ``backend``: ``torch``, or the same network exported to OpenVINO or ONNX Runtime (CPU). ``auto`` = OpenVINO
  when it is installed and the device is a CPU, unless ``precision`` is explicitly ``fp32`` (exact mode);
  without OpenVINO, PyTorch on the CPU runs in the channels_last_3d layout outside exact mode.
- ``crop``: ``body`` crops nnU-Net's preprocessed (already z-scored over the whole volume) image to the body's
  bounding box and skips tiles that hold only air; ``tiles`` keeps nnU-Net's tile grid and only skips all-air
  tiles; ``none`` runs every tile.
- ``tiles``: ``patch`` (nnU-Net's tiles) or ``large`` (the -fast mode: tiles fitted to the image, up to 3× the
  training patch, so fewer and less padded forward passes).

Around them, at no cost to the masks: exported networks compute the decoder's concatenations as two
convolutions (``export_view``), nnU-Net is imported without ``torch._dynamo`` (``nnunet_import``), the region
probabilities are resampled back one channel per thread, and OpenVINO compiles while nnU-Net preprocesses.

The hooks are nnU-Net's own per-call methods (``predict_logits_from_preprocessed_data``,
``_internal_predict_sliding_window_return_logits``), present with the same signatures in 2.3.1 … 2.8.x; if a
version lacks them the subclass simply inherits nnU-Net's behaviour.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import io
import json
import os
import pydoc
import sys
import threading
import time
import warnings
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import ModelError
from .nnunet_import import import_nnunet

for _var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):  # silence nnU-Net's import warnings
    os.environ.setdefault(_var, os.devnull)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("auto", "torch", "openvino", "onnxruntime")
CROPS = ("none", "tiles", "body")
TILES = ("patch", "large")
LARGE_TILE_FACTOR = 3  # "large" tiles hold at most this many training patches' worth of voxels
BACKGROUND_LOGIT = -30.0  # region logit written where no tile ran (sigmoid ≈ 1e-13)


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
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    backend: str = "auto"  # auto | torch | openvino | onnxruntime
    crop: str = "none"  # none | tiles | body
    tiles: str = "patch"  # patch | large


@dataclass
class Resolved:
    """What ``auto`` became on this machine, and why (recorded in every output's sidecar)."""

    device: str
    precision: str
    backend: str
    crop: str
    tiles: str
    threads: int
    notes: List[str] = field(default_factory=list)
    channels_last: bool = False  # PyTorch on CPU outside exact mode: channels_last_3d layout (oneDNN)

    def as_dict(self) -> dict:
        return {"device": self.device, "precision": self.precision, "backend": self.backend, "crop": self.crop,
                "tiles": self.tiles, "threads": self.threads,
                "layout": "channels_last_3d" if self.channels_last else "contiguous"}


def nnunet_version() -> str:
    from importlib.metadata import version
    return version("nnunetv2")


def cpu_flags() -> set:
    """CPU feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX-512 BF16 or AMX); emulated bf16 is far slower than fp32."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _module_available(name: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


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


def resolve(settings: PredictorSettings) -> Resolved:
    """Turn ``auto`` settings into concrete ones for this machine (imports torch)."""
    import torch

    for value, allowed, what in ((settings.precision, PRECISIONS, "precision"), (settings.backend, BACKENDS, "backend"),
                                 (settings.crop, CROPS, "crop"), (settings.tiles, TILES, "tiles")):
        if value not in allowed:
            raise ValueError(f"invalid {what} {value!r} (choose from {', '.join(allowed)})")
    device = _resolve_device(settings.device)
    notes: List[str] = []
    threads = int(settings.threads) if settings.threads else (torch.get_num_threads() if device.type != "cpu"
                                                               else default_threads())
    precision = settings.precision
    if precision == "auto":
        if device.type == "cuda":
            precision = "fp16"
        elif device.type == "cpu" and native_bf16():
            precision = "bf16"
        else:
            precision = "fp32"
    backend = settings.backend
    if backend == "auto":
        backend = "torch"
        if device.type == "cpu" and settings.precision != "fp32" and precision in ("fp32", "bf16"):
            if _module_available("openvino"):
                backend = "openvino"
            else:
                notes.append("OpenVINO is not installed: using PyTorch (pip install openvino for ~2x on CPU)")
    if backend in ("openvino", "onnxruntime") and device.type != "cpu":
        raise ValueError(f"backend {backend} runs on the CPU only (device is {device.type})")
    if backend == "onnxruntime" and precision != "fp32":
        raise ValueError("backend onnxruntime supports precision fp32 only")
    if backend in ("openvino", "onnxruntime") and not _module_available(backend):
        raise ModelError(f"backend {backend}: the Python package {backend!r} is not installed")
    channels_last = (backend == "torch" and device.type == "cpu" and settings.precision != "fp32"
                     and precision == "fp32")
    return Resolved(device.type, precision, backend, settings.crop, settings.tiles, threads, notes, channels_last)


def input_channels(dataset_json: dict) -> int:
    """Number of input images per case ("channel_names", or "modality" in older dataset.json files)."""
    return len(dataset_json.get("channel_names", dataset_json.get("modality", {"0": ""})))


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


def _load_checkpoint(path: Path) -> dict:
    import torch
    kwargs = {"map_location": torch.device("cpu")}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False  # nnU-Net checkpoints hold numpy/plain objects
    if "mmap" in inspect.signature(torch.load).parameters:
        kwargs["mmap"] = True  # optimizer state is never read: do not page it in
    try:
        return torch.load(str(path), **kwargs)
    except Exception as exc:  # torch raises many types for a damaged file
        if kwargs.pop("mmap", False):  # old (non-zip) checkpoints cannot be memory-mapped
            try:
                return torch.load(str(path), **kwargs)
            except Exception:
                pass
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


# -- network engines ------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Where exported networks (OpenVINO IR, ONNX) are kept: $SCISEG_CACHE_DIR, else the user cache folder."""
    env = os.environ.get("SCISEG_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("sct_task_sciseg", appauthor=False))


def _engine_class():
    import torch

    from .export_view import VIEW_VERSION, export_view

    class NetworkEngine(torch.nn.Module):
        """Runs nnU-Net's network through a backend and precision; nnU-Net sees a normal ``nn.Module``.

        ``load_state_dict`` is delegated to the wrapped network; loading the dict that is already loaded is a
        no-op (nnU-Net reloads the weights before every prediction). Exported backends are rebuilt when the
        weights change (ensembles of several folds).
        """

        def __init__(self, network, resolved: Resolved, fold_keys: Dict[int, str], example_shape: Sequence[int]):
            super().__init__()
            self.network = network
            self.resolved = resolved
            self.fold_keys = fold_keys  # id(state dict) → key of its checkpoint file (export cache)
            self.weights_key = ""
            self.example_shape = tuple(int(s) for s in example_shape)
            self._loaded = None  # the state dict currently in self.network
            self._exported = None  # OpenVINO model / ONNX path for the current weights
            self._compiled: Dict[Tuple[int, ...], object] = {}
            self._compile_lock = threading.Lock()
            self.forward_seconds = 0.0
            self.forward_calls = 0
            self.compile_seconds = 0.0
            self.keep_compiled = False
            self.parameters_list = None  # nnU-Net's list_of_parameters, when weights may be dropped
            self.weights_dropped = False

        # nnU-Net calls these
        def load_state_dict(self, state_dict, strict: bool = True, *args, **kwargs):
            if state_dict is self._loaded:
                return None
            out = self.network.load_state_dict(state_dict, strict, *args, **kwargs)
            self._exported, self._compiled = None, {}  # exported graphs hold the previous weights
            self.weights_key = self.fold_keys.get(id(state_dict), "")
            self._loaded = state_dict
            return out

        def forward(self, x):
            t0 = time.perf_counter()
            backend, precision = self.resolved.backend, self.resolved.precision
            if backend == "torch":
                y = self._torch_forward(x, precision)
            else:
                y = self._exported_forward(x)
            self.forward_seconds += time.perf_counter() - t0
            self.forward_calls += 1
            return y

        def _torch_forward(self, x, precision):
            dev = x.device.type
            if self.resolved.channels_last:
                return self.network(x.contiguous(memory_format=torch.channels_last_3d)).contiguous()
            if precision == "fp32":
                if dev == "cuda":  # nnU-Net enables fp16 autocast on CUDA: fp32 means switching it off
                    with torch.autocast("cuda", enabled=False):
                        return self.network(x.float())
                return self.network(x)
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            with torch.autocast(dev if dev in ("cpu", "cuda") else "cpu", dtype=dtype):
                y = self.network(x)
            return y.float()

        def _exported_forward(self, x):
            t0 = time.perf_counter()
            run = self._compiled_for(tuple(x.shape))
            self.compile_seconds += time.perf_counter() - t0  # compiling, or waiting for prepare() to finish
            out = run(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32))
            return torch.from_numpy(np.asarray(out)).to(x.device)

        def _compiled_for(self, shape: Tuple[int, ...]):
            with self._compile_lock:  # prepare() may be compiling this shape in another thread
                run = self._compiled.get(shape)
                if run is None:
                    run = self._compile(shape)
                    self._compiled = {shape: run, **dict(list(self._compiled.items())[:1])}  # keep ≤ 2 shapes
                return run

        def prepare(self, shape: Sequence[int]) -> None:
            """Compile the exported network for tiles of ``shape`` now (the predictor calls this in a background
            thread, overlapping nnU-Net's single-threaded preprocessing)."""
            if self.resolved.backend != "openvino" or self._loaded is None or tuple(shape) in self._compiled:
                return
            try:
                self._compiled_for(tuple(int(v) for v in shape))
            except Exception:  # noqa: BLE001 - the forward pass compiles again and reports the error
                pass

        def _compile(self, shape):
            if self.resolved.backend == "openvino":
                return self._compile_openvino(shape)
            return self._compile_onnxruntime(shape)

        # -- export, cached on disk by weights and versions
        def _cache_path(self, suffix: str) -> Path:
            from importlib.metadata import version
            if not self.weights_key:  # weights not from a checkpoint file: key on their values
                h = hashlib.sha256()
                for k, v in self.network.state_dict().items():
                    h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
                self.weights_key = h.hexdigest()
            key = hashlib.sha256("|".join([
                self.weights_key, self.resolved.backend, version(self.resolved.backend), torch.__version__,
                type(self.network).__name__, repr(self.example_shape), VIEW_VERSION]).encode()).hexdigest()[:24]
            return cache_dir() / self.resolved.backend / key / f"network{suffix}"

        def _onnx_file(self) -> Path:
            path = self._cache_path(".onnx")
            if not path.is_file():
                if self.weights_dropped:
                    raise ModelError(f"{path.parent}: the exported network was removed during the run")
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{os.getpid()}.{path.name}")
                example = torch.zeros(self.example_shape)
                kwargs = {"input_names": ["x"], "output_names": ["y"], "opset_version": 17,
                          "dynamic_axes": {"x": {2: "d0", 3: "d1", 4: "d2"}, "y": {2: "d0", 3: "d1", 4: "d2"}}}
                if "dynamo" in inspect.signature(torch.onnx.export).parameters:
                    kwargs["dynamo"] = False
                was_training = self.network.training
                self.network.eval()
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(export_view(self.network), example, str(tmp), **kwargs)
                self.network.train(was_training)
                os.replace(tmp, path)
            return path

        def _openvino_model(self):
            import openvino as ov
            if self._exported is None:
                path = self._cache_path(".xml")
                core = ov.Core()
                if not path.is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    model = core.read_model(str(self._onnx_file()))
                    tmp = path.with_name(f".{os.getpid()}.{path.name}")
                    ov.save_model(model, str(tmp), compress_to_fp16=False)
                    os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
                    os.replace(tmp, path)
                self._exported = core.read_model(str(path))
            return self._exported

        def _compile_openvino(self, shape):
            import openvino as ov
            model = self._openvino_model().clone()
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

        def _drop_torch_weights(self):
            """With one fold and the network exported to disk, PyTorch's copy of the weights is never used
            again: free it (≈ 0.12 GB for SCIseg). nnU-Net's list of parameters gets an empty stand-in that
            ``load_state_dict`` recognises."""
            params = self.parameters_list
            if params is None or len(params) != 1 or params[0] is not self._loaded:
                return
            marker: dict = {}
            params[0] = marker
            self._loaded = marker
            for module in self.network.modules():
                for name, tensor in list(module.named_parameters(recurse=False)):
                    setattr(module, name, torch.nn.Parameter(torch.empty(0), requires_grad=False))
            self.weights_dropped = True

        def release(self):
            """Free an exported engine's working memory (OpenVINO keeps it with the compiled network, ≈ 1 GB
            for SCIseg's tile) so that it does not add to nnU-Net's resampling afterwards. Recompiling from the
            cached IR costs about a second; batches keep the compiled network (``keep_compiled``)."""
            if not self.keep_compiled and self.resolved.backend == "openvino":
                with self._compile_lock:
                    self._compiled = {}

        def _compile_onnxruntime(self, shape):
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(self.resolved.threads)
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = self._exported or ort.InferenceSession(str(self._onnx_file()), opts,
                                                             providers=["CPUExecutionProvider"])
            self._exported = session
            return lambda x: session.run(None, {"x": x})[0]

    return NetworkEngine


# -- regions of interest and tiles ----------------------------------------------------------------------

def body_mask(image: np.ndarray, block: int = 4) -> Optional[np.ndarray]:
    """Voxels of ``image`` (one channel, any intensity scale) that are in the body rather than air.

    Works on ``block``³ block means (noise averages out). Air is the noise floor: blocks within 5 % of the
    robust intensity range (1st to 99th percentile) above its bottom. When fewer than 5 % of the blocks are
    that dark there is no air (the field of view is inside the body) and None is returned. The thresholds
    scale with the image, so z-scored and raw intensities give the same mask. One block of margin.
    """
    from scipy import ndimage

    shape = np.array(image.shape)
    pad = (-shape) % block
    x = np.pad(image.astype(np.float32, copy=False), [(0, int(p)) for p in pad], mode="edge")
    s = np.array(x.shape) // block
    means = x.reshape(s[0], block, s[1], block, s[2], block).mean(axis=(1, 3, 5))
    lo, hi = (float(v) for v in np.percentile(means, [1, 99]))
    if not hi > lo:
        return None
    coarse = means > lo + 0.05 * (hi - lo)
    if (~coarse).mean() < 0.05:
        return None
    labels, n = ndimage.label(coarse)
    if n > 1:  # drop specks (noise, ghosts): keep components with ≥ 1 % of the largest one's blocks
        sizes = np.bincount(labels.ravel())[1:]
        coarse = np.isin(labels, np.nonzero(sizes >= 0.01 * sizes.max())[0] + 1)
    coarse = ndimage.binary_dilation(coarse, iterations=1)  # one block of margin
    if coarse.all():
        return None
    full = coarse.repeat(block, 0).repeat(block, 1).repeat(block, 2)
    return full[: shape[0], : shape[1], : shape[2]]


def bounding_box(mask: np.ndarray, margin: Sequence[int]) -> Tuple[slice, ...]:
    idx = [np.nonzero(mask.any(axis=tuple(j for j in range(mask.ndim) if j != i)))[0] for i in range(mask.ndim)]
    return tuple(slice(max(0, int(ix[0]) - m), min(n, int(ix[-1]) + 1 + m))
                 for ix, m, n in zip(idx, margin, mask.shape))


def large_tile(extent: Sequence[int], patch: Sequence[int], strides: Sequence[int],
               factor: float = LARGE_TILE_FACTOR) -> List[int]:
    """Tile size for the -fast mode: fitted to the image (less padding), grown up to ``factor`` patches."""
    def up(n, m):
        return int(-(-int(n) // m) * m)
    tile = [max(min(up(e, m), p), 2 * m) for e, p, m in zip(extent, patch, strides)]
    budget = factor * int(np.prod(patch))
    while True:
        grow = [i for i in range(len(tile)) if up(extent[i], strides[i]) > tile[i]]
        if not grow:
            return tile
        i = max(grow, key=lambda j: up(extent[j], strides[j]) / tile[j])
        candidate = list(tile)
        candidate[i] = min(up(extent[i], strides[i]), tile[i] * 2)
        if int(np.prod(candidate)) > budget:
            return tile
        tile = candidate


def _predictor_class():
    import torch
    nnUNetPredictor = import_nnunet()[0]

    class SciSegPredictor(nnUNetPredictor):
        """nnUNetPredictor with region-of-interest cropping, air-tile skipping, large tiles and statistics."""

        sciseg_crop = "none"
        sciseg_tiles = "patch"
        sciseg_strides: List[int] = []
        sciseg_stats: dict = {}
        _sciseg_mask = None

        def predict_single_npy_array(self, *args, **kwargs):
            warm = None
            if self.sciseg_tiles == "patch":  # tiles of the training patch: known before preprocessing
                warm = threading.Thread(target=self._warm_up, name="sciseg-warm-up", daemon=True)
                warm.start()
            self._sciseg_warm = warm
            try:
                return super().predict_single_npy_array(*args, **kwargs)
            finally:
                self._join_warm()

        def _warm_up(self):
            """What does not depend on the image, done while nnU-Net preprocesses it: compile the exported
            network for the tile shape, and fill nnU-Net's cache of the Gaussian tile weights (same call)."""
            patch = tuple(int(v) for v in self.configuration_manager.patch_size)
            if hasattr(self.network, "prepare"):
                self.network.prepare((1, input_channels(self.dataset_json), *patch))
            if self.use_gaussian and self.device.type == "cpu":
                try:
                    from nnunetv2.inference.sliding_window_prediction import compute_gaussian
                    compute_gaussian(patch, sigma_scale=1. / 8, value_scaling_factor=10, device=torch.device("cpu"))
                except Exception:  # noqa: BLE001 - nnU-Net computes it itself then
                    pass

        def _join_warm(self):
            warm, self._sciseg_warm = getattr(self, "_sciseg_warm", None), None
            if warm is not None:  # before nnU-Net touches the weights (compiling may drop PyTorch's copy)
                warm.join()

        def predict_logits_from_preprocessed_data(self, data, *args, **kwargs):
            self._join_warm()
            if args or kwargs:  # e.g. nnunetv2-neuropoly's return_logits_per_fold (SCT 7.x): plain path
                self.sciseg_stats = {"tiles": 0, "tiles_skipped": 0, "tile_size": None,
                                     "roi_shape": list(data.shape[1:]), "model_shape": list(data.shape[1:])}
                self._sciseg_mask = None
                return super().predict_logits_from_preprocessed_data(data, *args, **kwargs)
            t0 = time.perf_counter()
            self._sciseg_t_enter = t0
            engine = self.network if hasattr(self.network, "forward_seconds") else None
            f0 = engine.forward_seconds if engine is not None else 0.0
            c0 = engine.forward_calls if engine is not None else 0
            e0 = engine.compile_seconds if engine is not None else 0.0
            stats = {"tiles": 0, "tiles_skipped": 0, "tile_size": None, "roi_shape": list(data.shape[1:]),
                     "model_shape": list(data.shape[1:])}
            self.sciseg_stats = stats
            trim_memory()  # preprocessing temporaries
            box = None
            self._sciseg_mask = None
            spatial = data.ndim == 4 and len(self.configuration_manager.patch_size) == 3
            if self.sciseg_crop != "none" and spatial:
                mask = body_mask(data[0].cpu().numpy() if isinstance(data, torch.Tensor) else data[0])
                if mask is not None:
                    if self.sciseg_crop == "body":
                        margin = [max(8, p // 8) for p in self.configuration_manager.patch_size]
                        box = bounding_box(mask, margin)
                        if all(b.stop - b.start == n for b, n in zip(box, mask.shape)):
                            box = None
                        else:
                            mask = mask[box]
                    self._sciseg_mask = mask
            sub = data if box is None else data[(slice(None), *box)]
            stats["roi_shape"] = list(sub.shape[1:])
            saved_cm = self.configuration_manager
            if self.sciseg_tiles == "large" and spatial:
                tile = large_tile(sub.shape[1:], saved_cm.patch_size, self.sciseg_strides, LARGE_TILE_FACTOR)
                cm = copy.copy(saved_cm)
                cm.configuration = dict(saved_cm.configuration, patch_size=list(tile))
                self.configuration_manager = cm
            stats["tile_size"] = list(self.configuration_manager.patch_size)
            try:
                logits = super().predict_logits_from_preprocessed_data(sub)
            finally:
                self.configuration_manager = saved_cm
                self._sciseg_mask = None
                if engine is not None:
                    engine.release()  # nothing of the network's working memory stays during resampling
            if stats["tiles_skipped"]:
                logits = self._fill_unpredicted(logits)
            if box is not None:
                full = self._background((logits.shape[0], *data.shape[1:]), logits.dtype)
                full[(slice(None), *box)] = logits
                logits = full
            if engine is not None:
                stats["network_seconds"] = engine.forward_seconds - f0 - (engine.compile_seconds - e0)
                stats["forward_calls"] = engine.forward_calls - c0
                stats["compile_seconds"] = engine.compile_seconds - e0
            self._sciseg_t_exit = time.perf_counter()
            stats["sliding_window_seconds"] = self._sciseg_t_exit - t0
            return logits

        def _background(self, shape, dtype):
            out = torch.full(shape, BACKGROUND_LOGIT, dtype=dtype)
            if not self.label_manager.has_regions:  # softmax: background channel wins
                out[0] = -BACKGROUND_LOGIT
            return out

        def _fill_unpredicted(self, logits):
            hole = torch.isnan(logits).any(0)
            if bool(hole.any()):
                bg = self._background((logits.shape[0], 1, 1, 1), logits.dtype)
                logits = torch.where(hole[None], bg, logits)
            return logits

        def _internal_get_sliding_window_slicers(self, image_size):
            slicers = super()._internal_get_sliding_window_slicers(image_size)
            mask = self._sciseg_mask
            if mask is not None and len(image_size) == 3:
                diff = np.array(image_size) - np.array(mask.shape)
                if np.all(diff >= 0):
                    below = diff // 2
                    padded = np.pad(mask, [(int(b), int(d - b)) for b, d in zip(below, diff)])
                    kept = [s for s in slicers if padded[tuple(s[1:])].any()]
                    if kept:
                        self.sciseg_stats["tiles_skipped"] += len(slicers) - len(kept)
                        slicers = kept
            self.sciseg_stats["tiles"] += len(slicers)
            return slicers

    return SciSegPredictor


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


def _threaded_resampling(configuration_manager, threads: int):
    """``configuration_manager`` whose ``resampling_fn_probabilities`` runs :func:`_per_channel_threads`."""
    base = type(configuration_manager)
    if threads < 2 or not isinstance(getattr(base, "resampling_fn_probabilities", None), property):
        return configuration_manager

    class ThreadedResampling(base):
        @property
        def resampling_fn_probabilities(self):
            return _per_channel_threads(super().resampling_fn_probabilities, threads)

        def __reduce__(self):  # nnU-Net's worker processes get a plain one, same state
            return _restore_as, (base, dict(self.__dict__))

    ThreadedResampling.__name__ = ThreadedResampling.__qualname__ = base.__name__
    configuration_manager.__class__ = ThreadedResampling
    return configuration_manager


def _tune_malloc() -> None:
    """glibc: serve large arrays from mmap and hand freed memory back, so that nnU-Net's resampling
    temporaries do not stay resident while the network runs (lower peak memory, same results)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD: 4 MiB, fixed
        libc.mallopt(-1, 32 << 20)  # M_TRIM_THRESHOLD: 32 MiB
    except (OSError, AttributeError):
        pass


def trim_memory() -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def _weights_key(checkpoints: Sequence[Path]) -> str:
    parts = []
    for c in checkpoints:
        st = c.stat()
        parts.append(f"{c.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def load_predictor(model_folder: Path, settings: PredictorSettings):
    """An initialised predictor (an ``nnUNetPredictor`` subclass) for ``model_folder`` and its checkpoints."""
    os.environ.setdefault("nnUNet_def_n_proc", str(settings.threads or default_threads()))  # no oversubscription
    import torch
    PlansManager = import_nnunet()[1]

    if settings.threads:
        torch.set_num_threads(int(settings.threads))
    resolved = resolve(settings)
    device = torch.device(resolved.device)
    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    plans = json.loads((model_folder / "plans.json").read_text())
    checkpoints = fold_checkpoints(model_folder, settings)
    parameters, first = [], None
    for path in checkpoints:  # one at a time; only the weights are kept (no optimizer state)
        ck = _load_checkpoint(path)
        if first is None:
            first = {k: ck.get(k) for k in ("init_args", "trainer_name", "inference_allowed_mirroring_axes")}
        if "network_weights" not in ck:
            raise ModelError(f"{path}: not an nnU-Net checkpoint (no network_weights)")
        parameters.append(ck["network_weights"])
        del ck
    configuration_name = (first.get("init_args") or {}).get("configuration", "3d_fullres")
    plans_manager = PlansManager(plans)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old plans format notice
        configuration_manager = plans_manager.get_configuration(configuration_name)
    configuration_manager = _threaded_resampling(configuration_manager, resolved.threads)
    label_manager = plans_manager.get_label_manager(dataset_json)
    n_inputs = input_channels(dataset_json)
    network = build_network(configuration_manager.configuration, n_inputs, label_manager.num_segmentation_heads)
    try:
        network.load_state_dict(parameters[0])
    except RuntimeError as exc:
        raise ModelError(f"{checkpoints[0]}: weights do not fit the network in plans.json ({exc})") from exc
    network.eval()
    if resolved.channels_last:
        network = network.to(memory_format=torch.channels_last_3d)
    parameters[0] = network.state_dict()  # share the network's tensors: one copy of the first fold's weights
    strides = network_strides(configuration_manager.configuration)
    example = [1, n_inputs] + [max(2 * m, 32) for m in strides]
    fold_keys = {id(p): _weights_key([c]) for p, c in zip(parameters, checkpoints)}
    engine = _engine_class()(network, resolved, fold_keys, example)
    engine.load_state_dict(parameters[0])
    if settings.verbose:
        for note in resolved.notes:
            print(f"note: {note}", file=sys.stderr)

    predictor_class = _predictor_class()
    init = inspect.signature(predictor_class.__init__).parameters
    on_device = "perform_everything_on_device" if "perform_everything_on_device" in init \
        else "perform_everything_on_gpu"
    kwargs = {"tile_step_size": settings.tile_step_size, "use_gaussian": settings.use_gaussian,
              "use_mirroring": settings.use_mirroring, on_device: device.type == "cuda",
              "device": device, "verbose": False, "verbose_preprocessing": False}
    if "allow_tqdm" in init:
        kwargs["allow_tqdm"] = bool(settings.verbose)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a notice for every non-CUDA device
        predictor = predictor_class(**kwargs)
    mirror_axes = first.get("inference_allowed_mirroring_axes")
    predictor.manual_initialization(engine, plans_manager, configuration_manager, parameters, dataset_json,
                                    first.get("trainer_name") or "nnUNetTrainer", mirror_axes)
    if resolved.backend == "openvino":
        engine.parameters_list = predictor.list_of_parameters
    _tune_malloc()
    predictor.sciseg_crop = resolved.crop
    predictor.sciseg_tiles = resolved.tiles
    predictor.sciseg_strides = strides
    predictor.sciseg_resolved = resolved
    return predictor, checkpoints


def predict_labels(predictor, data_zyx: np.ndarray, spacing_zyx: Sequence[float],
                   return_probabilities: bool = False):
    """Label map (and region probabilities when asked) of one (z, y, x) array with its (z, y, x) spacing."""
    import torch
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = predictor.predict_single_npy_array(
            data_zyx[None].astype(np.float32, copy=False), {"spacing": [float(s) for s in spacing_zyx]},
            None, None, return_probabilities)
    stats = getattr(predictor, "sciseg_stats", None)
    if isinstance(stats, dict) and getattr(predictor, "_sciseg_t_enter", None):  # nnU-Net's own phases
        stats["preprocess_seconds"] = predictor._sciseg_t_enter - t0
        stats["resample_back_seconds"] = time.perf_counter() - predictor._sciseg_t_exit
    return out
