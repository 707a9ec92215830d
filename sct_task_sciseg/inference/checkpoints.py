"""Reading nnU-Net checkpoints: the network weights and the few fields inference needs."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import List, Sequence, Tuple

from ..errors import ModelError

META_KEYS = ("init_args", "trainer_name", "inference_allowed_mirroring_axes")


def load_checkpoint(path: Path) -> dict:
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


def load_weights(checkpoints: Sequence[Path]) -> Tuple[List[dict], dict]:
    """(network weights of every checkpoint, the first checkpoint's inference fields), one file at a time:
    only the weights are kept (no optimizer state)."""
    parameters, first = [], None
    for path in checkpoints:
        ck = load_checkpoint(path)
        if not isinstance(ck, dict) or "network_weights" not in ck:
            raise ModelError(f"{path}: not an nnU-Net checkpoint (no network_weights)")
        if first is None:
            first = {k: ck.get(k) for k in META_KEYS}
        parameters.append(ck["network_weights"])
        del ck
    return parameters, first or {}
