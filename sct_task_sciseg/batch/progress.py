"""Progress of a batch: one bar with ETA on a terminal, plain lines with an ETA otherwise (logs, pipes)."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.bar = None
        if enabled and total > 1 and sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="scan", file=sys.stderr, dynamic_ncols=True,
                                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")
            except ImportError:
                self.bar = None

    def eta(self) -> str:
        if self.n == 0 or self.n >= self.total:
            return ""
        left = (time.perf_counter() - self.t0) / self.n * (self.total - self.n)
        return f", ETA {int(left // 60)}:{int(left % 60):02d}"

    def say(self, line: str, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        if self.bar is not None:
            self.bar.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)

    def error(self, report, message: str) -> None:
        """``report(message)`` without breaking the bar."""
        if self.bar is not None:
            self.bar.clear()
        report(message)
        if self.bar is not None:
            self.bar.refresh()

    def step(self) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
