"""Reading nnU-Net checkpoints: the network weights and the few fields inference needs, each checkpoint
hashed against its install record and loaded without running code from it
(:mod:`sct_task_sciseg.weights.checkpoint_file`)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..errors import ModelError
from ..weights.checkpoint_file import read_checkpoint
from ..weights.model_folder import checkpoint_problem

META_KEYS = ("init_args", "trainer_name", "inference_allowed_mirroring_axes")


def load_checkpoint(path: Path, sha256: Optional[str] = None) -> dict:
    """The checkpoint of ``path``, refused (one line naming the file) when its sha256 is not ``sha256``,
    when it names a global outside the allow-list, or when it is not an nnU-Net checkpoint."""
    ck = read_checkpoint(path, sha256)
    problem = checkpoint_problem(ck)
    if problem:
        raise ModelError(f"{path}: {problem}")
    return ck


def load_weights(checkpoints: Sequence[Tuple[Path, Optional[str]]]) -> Tuple[List[dict], dict]:
    """(network weights of every checkpoint, the first checkpoint's inference fields) from (path, recorded
    sha256) pairs, one file at a time: only the weights are kept (no optimizer state)."""
    parameters, first = [], None
    for path, sha256 in checkpoints:
        ck = load_checkpoint(path, sha256)
        if first is None:
            first = {k: ck.get(k) for k in META_KEYS}
        parameters.append(ck["network_weights"])
        del ck
    return parameters, first or {}
