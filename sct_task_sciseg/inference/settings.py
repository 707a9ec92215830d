"""Predictor settings and what ``auto`` becomes on this machine (device, precision, backend, threads).

- ``precision``: ``fp32`` is nnU-Net's own PyTorch path, voxel-identical to ``sct_deepseg`` and bit-identical
  at every thread count; ``bf16``/``fp16`` run the network in lower precision and change masks, so they run
  only when asked for; ``auto`` is fp32 on the CPU and nnU-Net's own fp16 autocast on CUDA (what SCT does
  there); with ``fast`` it is bf16 on CPUs that compute bf16 natively (avx512_bf16/amx_bf16).
- ``backend``: ``torch``, or the same network exported to OpenVINO or ONNX Runtime (CPU). ``auto`` = PyTorch
  (the default gives SCT's masks at every thread count; no exported engine does: OpenVINO's fp32 logits
  differ from PyTorch's and between one and two threads), OpenVINO with ``fast`` or ``-precision bf16`` when
  it is installed; ``fast`` without OpenVINO runs PyTorch in the channels_last_3d layout.
- ``crop``: ``body`` crops nnU-Net's preprocessed (already z-scored over the whole volume) image to the body's
  bounding box and skips tiles that hold only air; ``tiles`` keeps nnU-Net's tile grid and only skips all-air
  tiles; ``none`` runs every tile.
- ``tiles``: ``patch`` (nnU-Net's tiles) or ``large`` (tiles fitted to the image, up to 3× the training patch,
  so fewer and less padded forward passes; changes masks).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence, Tuple

from ..errors import ModelError, SettingError
from ..log import logger
from ..machine import cores, cpu_flags, module_available

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BACKENDS = ("auto", "torch", "openvino", "onnxruntime")
CROPS = ("none", "tiles", "body")
TILES = ("patch", "large")
#: Sliding-window steps (fractions of the tile): nnU-Net's default is 0.5; the number of tiles grows as
#: (1 / step)³, so 0.1 already runs ~125x as many as 1.0.
TILE_STEP_RANGE = (0.1, 1.0)
NATIVE_FP16_FLAGS = {"avx512_fp16", "amx_fp16"}
_warned: set = set()


def max_threads() -> int:
    """The most CPU threads worth asking for: the logical CPUs of this machine."""
    return max(os.cpu_count() or 1, cores())


def check_threads(value: int, cores: Optional[int] = None) -> int:
    """1 to ``cores`` threads (default: the logical CPUs of this machine; 0: no upper bound, for a portable
    configuration or workers elsewhere, whose cores are checked where the model loads or the job is known)."""
    limit = max_threads() if cores is None else cores
    if int(value) < 1 or (limit and int(value) > limit):
        raise SettingError(f"threads {value}: use 1 to {limit} (the logical CPUs of this machine)" if limit
                           else f"threads {value}: use 1 or more")
    return int(value)


def check_tile_step_size(value: float) -> float:
    low, high = TILE_STEP_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise SettingError(f"tile step size {value}: use {low} to {high} (fraction of a tile; default 0.5, "
                         "smaller steps multiply the run time by (0.5 / step)³)")
    return float(value)


def check_threshold(value: float) -> float:
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise SettingError(f"threshold {value}: a probability strictly between 0 and 1 is needed (default 0.5)")
    return float(value)


def check_folds(folds: Iterable[int]) -> Tuple[int, ...]:
    out = tuple(int(f) for f in folds)
    if any(f < 0 for f in out) or len(set(out)) != len(out):
        raise SettingError(f"folds {' '.join(map(str, out))}: give distinct fold numbers >= 0")
    return out


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
    fast: bool = False  # -fast: OpenVINO on every tile (bf16 on CPUs that compute it natively)


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
    channels_last: bool = False  # -fast without OpenVINO: PyTorch in the channels_last_3d layout (oneDNN)

    def as_dict(self) -> dict:
        return {"device": self.device, "precision": self.precision, "backend": self.backend, "crop": self.crop,
                "tiles": self.tiles, "threads": self.threads,
                "layout": "channels_last_3d" if self.channels_last else "contiguous"}


def native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX-512 BF16 or AMX); emulated bf16 is far slower than fp32."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def fp16_cpu_warning(flags: set) -> Optional[str]:
    """The warning for fp16 on a CPU with these feature flags (None where the CPU computes fp16 natively)."""
    if flags & NATIVE_FP16_FLAGS:
        return None
    return ("-precision fp16 on this CPU (no AVX512-FP16/AMX-FP16): PyTorch emulates fp16 and runs "
            "~80x slower than fp32 (measured on an AVX-512 BF16 AMD EPYC); use -precision fp32 (exact) or bf16")


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
    from .runtime import require_runtime
    require_runtime()
    import torch

    for value, allowed, what in ((settings.precision, PRECISIONS, "precision"), (settings.backend, BACKENDS, "backend"),
                                 (settings.crop, CROPS, "crop"), (settings.tiles, TILES, "tiles")):
        if value not in allowed:
            raise SettingError(f"invalid {what} {value!r} (choose from {', '.join(allowed)})")
    device = _resolve_device(settings.device)
    notes: List[str] = []
    if settings.threads:
        check_threads(settings.threads)  # the machine cap, where the model loads
    threads = int(settings.threads) if settings.threads else (torch.get_num_threads() if device.type != "cpu"
                                                               else cores())
    precision = settings.precision
    if precision == "auto":
        if device.type == "cuda":
            precision = "fp16"
        elif device.type == "cpu" and settings.fast and native_bf16():
            precision = "bf16"
        else:
            precision = "fp32"
    warning = fp16_cpu_warning(cpu_flags()) if precision == "fp16" and device.type == "cpu" else None
    if warning and warning not in _warned:  # once per process
        _warned.add(warning)
        logger.warning(warning)
    backend = settings.backend
    if backend == "auto":
        backend = "torch"
        if device.type == "cpu" and precision in ("fp32", "bf16") and (settings.fast or precision == "bf16"):
            if module_available("openvino"):
                backend = "openvino"
            else:
                notes.append("OpenVINO is not installed: -fast runs PyTorch (pip install openvino for ~1.6x)")
    if backend in ("openvino", "onnxruntime") and device.type != "cpu":
        raise SettingError(f"backend {backend} runs on the CPU only (device is {device.type})")
    if backend == "onnxruntime" and precision != "fp32":
        raise SettingError("backend onnxruntime supports precision fp32 only")
    if backend in ("openvino", "onnxruntime") and not module_available(backend):
        raise ModelError(f"backend {backend}: the Python package {backend!r} is not installed")
    channels_last = (backend == "torch" and settings.backend == "auto" and device.type == "cpu" and settings.fast
                     and precision == "fp32")
    return Resolved(device.type, precision, backend, settings.crop, settings.tiles, threads, notes, channels_last)
