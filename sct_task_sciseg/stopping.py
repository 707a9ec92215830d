"""A stop asked for by a signal (Ctrl-C, SIGTERM), kept until it is acted on.

The command's handler (:func:`on_signal`) raises ``KeyboardInterrupt`` in the main thread. When that lands
inside a garbage-collector callback or a ``__del__`` method (Dask's client runs one at every collection), Python
prints "Exception ignored in ..." and goes on as if nothing had happened, and the run would finish as if never
interrupted. So the handler also records the request here, and the batch raises it again at its next step
(:func:`raise_if_requested`: between scans, and in every bounded wait for a cluster's results).
"""
from __future__ import annotations

import signal
from typing import Optional, Type

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


_requested: Optional[Type[KeyboardInterrupt]] = None


def on_signal(signum, _frame) -> None:
    """The handler of :data:`STOP_SIGNALS`: records the stop, ignores further stop signals (the clean-up that
    follows must not be cut short) and raises it."""
    global _requested
    _requested = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise _requested()


def raise_if_requested() -> None:
    """Raise the stop a signal asked for, if any (once: a second call returns)."""
    global _requested
    requested, _requested = _requested, None
    if requested is not None:
        raise requested()


def clear() -> None:
    """Forget a recorded stop: it was acted on (the run that it stopped has reported it)."""
    global _requested
    _requested = None
