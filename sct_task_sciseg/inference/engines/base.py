"""The network as nnU-Net sees it: an ``nn.Module`` that runs through a backend and precision."""
from __future__ import annotations

import time
import types
from typing import Callable, Optional, Sequence, Tuple

import torch

from ..settings import Resolved


class NetworkEngine(torch.nn.Module):
    """Wraps nnU-Net's network; subclasses implement :meth:`run` for one backend.

    ``load_state_dict`` is delegated to the wrapped network; loading the dict that is already loaded is a
    no-op (nnU-Net reloads the weights before every prediction). Counters (forward seconds and calls, compile
    seconds) only grow: the predictor reports their change over one call.
    """

    def __init__(self, network: torch.nn.Module, resolved: Resolved):
        super().__init__()
        self.network = network
        self.resolved = resolved
        self._loaded = None  # the state dict currently in self.network
        self.forward_seconds = 0.0
        self.forward_calls = 0
        self.compile_seconds = 0.0
        self.keep_compiled = False  # batches: keep compiled networks between inputs
        self.on_forward: Optional[Callable[[], None]] = None  # called after every forward pass (progress)

    def load_state_dict(self, state_dict, strict: bool = True, *args, **kwargs):
        if state_dict is self._loaded:
            return None
        out = self.network.load_state_dict(state_dict, strict, *args, **kwargs)
        self._loaded = state_dict
        self.weights_changed(state_dict)
        return out

    def weights_changed(self, state_dict) -> None:
        """Called after new weights were loaded into the wrapped network."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        y = self.run(x)
        self.forward_seconds += time.perf_counter() - t0
        self.forward_calls += 1
        if self.on_forward is not None:
            self.on_forward()
        return y

    def run(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, shape: Sequence[int]) -> None:
        """Get ready for tiles of ``shape`` (exported engines compile); called from a background thread."""

    def release(self) -> None:
        """Free working memory kept between calls (nothing for PyTorch)."""

    def counters(self) -> Tuple[float, int, float]:
        return self.forward_seconds, self.forward_calls, self.compile_seconds


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _pointwise_forward(self: torch.nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A 1×1×1 convolution through oneDNN at every thread count (see :func:`same_kernels_at_any_thread_count`)."""
    if (x.device.type == "cpu" and x.dtype == torch.float32 and torch.get_num_threads() == 1
            and not _cpu_autocast() and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled):
        return torch.mkldnn_convolution(x.contiguous(), self.weight, self.bias, self.padding, self.stride,
                                        self.dilation, self.groups)
    return type(self).forward(self, x)


def same_kernels_at_any_thread_count(network: torch.nn.Module) -> int:
    """Make the CPU fp32 network compute the same bits at any thread count; returns the layers changed.

    PyTorch runs a stride-1 1×1×1 convolution through oneDNN when it has two threads or more, but through its
    own im2col + GEMM kernel (``slow_conv3d``) with one thread ("THNN is faster when single-threaded",
    ``ConvParams::use_mkldnn``): nnU-Net's last layer (the 1×1×1 segmentation head) then sums its input
    channels in another order, and one-thread logits differ in the last bits (3.8e-6 on the phantom model),
    which flips voxels near 0.5. Every other layer is bit-identical at 1 to 8 threads. With one thread these
    layers call the very oneDNN convolution PyTorch calls with more (same arguments, same bits)."""
    changed = 0
    for module in network.modules():
        if (type(module) is torch.nn.Conv3d and tuple(module.kernel_size) == (1, 1, 1)
                and tuple(module.stride) == (1, 1, 1) and tuple(module.dilation) == (1, 1, 1)
                and isinstance(module.padding, tuple) and module.padding_mode == "zeros"):
            module.forward = types.MethodType(_pointwise_forward, module)
            changed += 1
    return changed


class TorchEngine(NetworkEngine):
    """nnU-Net's own PyTorch network: fp32 exactly as nnU-Net runs it with two threads or more (at every
    thread count: :func:`same_kernels_at_any_thread_count`), or bf16/fp16 autocast, or the channels_last_3d
    layout (oneDNN) on the CPU outside exact mode."""

    def __init__(self, network: torch.nn.Module, resolved: Resolved):
        super().__init__(network, resolved)
        if resolved.device == "cpu" and resolved.precision == "fp32" and not resolved.channels_last:
            same_kernels_at_any_thread_count(network)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        dev = x.device.type
        precision = self.resolved.precision
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
