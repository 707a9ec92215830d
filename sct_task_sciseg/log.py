"""The package's logger: every warning and note of the core goes through ``logging.getLogger("sct_task_sciseg")``.

The core never configures logging; an adapter does (the ``sciseg`` command: :func:`console_handler`). A Python
caller that configures nothing still sees warnings (Python's last-resort handler prints them to stderr).
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, TextIO

NAME = "sct_task_sciseg"
logger = logging.getLogger(NAME)


class _Prefixed(logging.Formatter):
    """``warning: …`` / ``note: …`` / ``error: …``: the words the command line has always used."""

    WORDS = {logging.DEBUG: "debug", logging.INFO: "note", logging.WARNING: "warning"}

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.WORDS.get(record.levelno, 'error')}: {record.getMessage()}"


def console_handler(verbose: bool, stream: Optional[TextIO] = None) -> logging.Handler:
    """Attach (once) a handler printing the package's records to ``stream`` (default: stderr at each write);
    notes shown only when ``verbose``. Returns the handler (an adapter may remove it again)."""
    for h in logger.handlers:
        if getattr(h, "sciseg_console", False):
            logger.removeHandler(h)
    handler = logging.StreamHandler(stream or _Stderr())
    handler.setFormatter(_Prefixed())
    handler.sciseg_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    return handler


class _Stderr:
    """sys.stderr as it is at each write (tests and adapters may swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
