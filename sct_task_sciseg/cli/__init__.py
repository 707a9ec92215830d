"""``sciseg``: SCIseg standalone with sct_deepseg's single-dash flags (the ``sciseg`` console script).

Importing this package (``-h``, ``-list-tasks``, installs) never imports torch or nnU-Net. SIGTERM is handled
like Ctrl-C: the file being written is finished or removed, no partial output is left, and the exit status
is 143 (130 for Ctrl-C).
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Optional, Sequence

from ..errors import SciSegError
from .commands import cli_message, cmd_install, cmd_list_tasks, cmd_register_sct, cmd_segment, err
from .parser import build_parser, check_args, check_demo_args
from .preflight import UsageError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


def _on_stop_signal(signum, _frame) -> None:
    for s in STOP_SIGNALS:  # the clean-up that follows must not be cut short by a second signal
        signal.signal(s, signal.SIG_IGN)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _stopped(exc: KeyboardInterrupt) -> int:
    if isinstance(exc, Terminated):
        err("terminated (SIGTERM); no partial output was left")
        return 143
    done = getattr(exc, "batch_progress", None)
    if done and done[1] > 1:
        err(f"interrupted: {done[0]} of {done[1]} done; run the same command to resume (no partial output "
            f"was left)")
    else:
        err("interrupted; no partial output was left")
    return 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``sciseg`` with ``argv`` (default: the command line); returns the exit status.

    Called without ``argv`` (the console script), main owns the process: a segmentation restarts it once
    with huge pages for large arrays (:func:`~sct_task_sciseg.inference.tuning.restart_tuned`), and once the
    run is over SIGINT and SIGTERM are ignored and the process ends at once with the exit status. Called with
    ``argv``, the previous signal handlers are put back and the status is returned.
    """
    if threading.current_thread() is not threading.main_thread():
        return _run(argv)
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _on_stop_signal)
    try:
        code = _run(argv)
    except KeyboardInterrupt as exc:  # a signal between the end of the run and this line
        code = _stopped(exc)
    finally:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN if argv is None else previous[s])
    if argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process once every output is written and the streams are flushed, without the interpreter's
    teardown of torch, nnU-Net and OpenVINO (about a second spent freeing what the system frees anyway)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: nothing more can reach it
        pass
    import os
    os._exit(code)


def _run(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check_args(parser, args)
        if args.list_tasks:
            return cmd_list_tasks(args.models_dir)
        if args.install is not None:
            return cmd_install(args)
        if args.register_sct or args.unregister_sct:
            return cmd_register_sct(args)
        if not args.demo and not args.i:
            err("give an input with -i FILE (sciseg -h: every option; sciseg -demo: an offline demo)")
            return 2
        if args.demo:
            check_demo_args(parser, args)
        if argv is None:  # the command owns its process: restart it once with huge pages for big arrays
            from ..inference.tuning import restart_tuned
            restart_tuned()
        if args.demo:
            from ..demo.run import run_demo
            return run_demo(args)
        return cmd_segment(args)
    except KeyboardInterrupt as exc:
        return _stopped(exc)
    except UsageError as exc:
        err(cli_message(exc))
        return 2
    except (SciSegError, KeyError, ValueError) as exc:
        err(cli_message(exc))
        return 1


__all__ = ["build_parser", "main"]
