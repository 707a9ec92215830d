"""Process-wide tuning, done only when an adapter asks for it (the CLI, batch workers): torch's thread count
and glibc's allocator. Nothing here runs at import or inside a model load."""
from __future__ import annotations

import sys
from typing import Optional


def configure_process(threads: Optional[int] = None) -> None:
    """Tune this process for inference: ``threads`` for torch's CPU operations (when given), and glibc
    serving large arrays from mmap and handing freed memory back, so that nnU-Net's resampling temporaries do
    not stay resident while the network runs (lower peak memory, same results). Irreversible; call once."""
    if threads:
        import torch
        torch.set_num_threads(int(threads))
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD: 4 MiB, fixed
            libc.mallopt(-1, 32 << 20)  # M_TRIM_THRESHOLD: 32 MiB
        except (OSError, AttributeError):
            pass


def trim_memory() -> None:
    """Hand memory freed by the allocator back to the system now (glibc only)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
