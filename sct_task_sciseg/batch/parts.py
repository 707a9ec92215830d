"""One slice of a dataset per array job, without Dask: ``-part K/N`` runs the K-th of N deterministic slices
of the inputs, so N array tasks cover a dataset exactly once; ``-summarize`` then reports on every scan."""
from __future__ import annotations

import os
import re
from typing import List, Mapping, Optional, Sequence, Tuple

from ..errors import SciSegError
from .inputs import Item, natural_key

ARRAY = "array"  # -part array: the part from SLURM's array variables


def parse_part(text: str, environ: Optional[Mapping[str, str]] = None) -> Tuple[int, int]:
    """``"K/N"`` → (K, N) with 0 <= K < N; ``"array"`` → from ``SLURM_ARRAY_TASK_ID`` (minus
    ``SLURM_ARRAY_TASK_MIN``) and ``SLURM_ARRAY_TASK_COUNT``, so ``--array=1-10`` gives parts 0/10 to 9/10."""
    env = os.environ if environ is None else environ
    if text == ARRAY:
        try:
            task, low, count = (int(env[k]) for k in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
                                                       "SLURM_ARRAY_TASK_COUNT"))
        except (KeyError, ValueError):
            raise ValueError("array: not inside a SLURM array job (SLURM_ARRAY_TASK_ID, _MIN and _COUNT "
                             "unset); give K/N") from None
        text = f"{task - low}/{count}"
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"{text}: expected K/N with 0 <= K < N (part K of N), or array")
    return int(match[1]), int(match[2])


def select_part(items: Sequence[Item], part: Tuple[int, int]) -> List[Item]:
    """Every N-th input from the K-th, the inputs in natural order of their absolute paths: the same slices
    whatever the order the inputs were given or listed in, and every input in exactly one part."""
    k, n = part
    if not 0 <= k < n:
        raise SciSegError(f"-part {k}/{n}: expected 0 <= K < N")
    ordered = sorted(items, key=lambda it: natural_key(os.path.abspath(it.path)))
    return ordered[k::n]


class NotRun:
    """The executor of ``-summarize``: nothing is segmented; a scan without up-to-date outputs is reported."""

    def run(self, pipeline) -> None:
        for job in pipeline.todo:
            job.status = "failed"
            job.reason = f"{job.path}: no up-to-date outputs (its part has not run, or failed)"
            pipeline.finish(job)
