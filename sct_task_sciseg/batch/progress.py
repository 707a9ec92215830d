"""Progress of a batch (one bar with ETA on a terminal, plain lines with an ETA otherwise: logs, pipes) and of
the stages within one scan (:class:`ScanProgress`)."""
from __future__ import annotations

import sys
import time
from typing import Optional


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


STAGES = {"load": "loading the model", "preprocess": "preprocessing (nnU-Net: crop, resample, normalise)",
          "network": "network", "resample": "resampling back to the input grid", "predict": "predicting",
          "postprocess": "post-processing", "write": "writing outputs"}


class ScanProgress:
    """``progress(stage, done, total)`` for :meth:`Segmenter.segment`: on a terminal, a line per stage and a bar
    with ETA over the network's forward passes; elsewhere one line per stage (no bar)."""

    def __init__(self, name: str, tty: Optional[bool] = None, stream=None):
        self.name, self.stream = name, stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.stage: Optional[str] = None
        self.bar = None
        self.t0 = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self._close_bar()
            self.stage = stage
            passes = f" ({total} tile passes)" if stage == "network" and total else ""
            print(f"{self.name}: {STAGES.get(stage, stage)}{passes}", file=self.stream, flush=True)
            if stage == "network" and total and self.tty:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="tile", file=self.stream, leave=False, dynamic_ncols=True,
                                bar_format="  {l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
        if self.bar is not None and done:
            if total and total != self.bar.total:
                self.bar.total = total
            self.bar.update(done - self.bar.n)
            if done >= self.bar.total:
                self.bar.refresh()  # the last pass always shows, whatever tqdm's redraw interval

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self._close_bar()
