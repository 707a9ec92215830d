"""What a machine or a job can hold: cores, memory, and the shape (workers × threads) of a cluster on them."""
from __future__ import annotations

from typing import Optional, Tuple

#: Peak memory of one worker running SCIsegV2 on a full-size scan (1.6–2.8 GB measured), rounded up: no more
#: workers are started than the memory holds.
WORKER_MEMORY = 3 * 2 ** 30


def most_workers(cores: int, memory: Optional[int]) -> int:
    """The most worker processes ``cores`` cores and ``memory`` bytes hold (one core and
    :data:`WORKER_MEMORY` each)."""
    cores = max(1, int(cores))
    return cores if memory is None else max(1, min(cores, int(memory // WORKER_MEMORY)))


def cluster_shape(cores: int, memory: Optional[int] = None, workers: Optional[int] = None,
                  threads: Optional[int] = None) -> Tuple[int, int]:
    """(worker processes, threads each) for ``cores`` cores and ``memory`` bytes; never more threads in all
    than cores, unless both are given. Default: as many workers as cores, fewer when memory holds fewer
    (:data:`WORKER_MEMORY` each), the cores then shared out as threads (8 cores, 16 GB: 4 × 2)."""
    cores = max(1, int(cores))
    if workers and threads:
        return int(workers), int(threads)
    if threads:
        return max(1, cores // int(threads)), int(threads)
    if workers:
        return int(workers), max(1, cores // int(workers))
    most = most_workers(cores, memory)
    threads = -(-cores // most)  # ceil: the fewest threads per worker that fill the cores
    return max(1, cores // threads), threads


def capped_workers(workers: int, cores: int, memory: Optional[int], where: str) -> Tuple[int, str]:
    """(``workers``, "") when ``cores`` and ``memory`` hold them, else (the most they hold, one line saying
    so): ``-workers 1000`` on 2 cores starts 2 workers, not 1000 processes."""
    most = most_workers(cores, memory)
    if workers <= most:
        return workers, ""
    gib = f", {memory / 2 ** 30:.1f} GiB at {WORKER_MEMORY / 2 ** 30:.0f} GiB per worker" if memory else ""
    return most, f"-workers {workers}: {where} holds {most} ({cores} cores{gib}); starting {most}"
