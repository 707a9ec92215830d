"""``sciseg``: SCIseg standalone with sct_deepseg's single-dash flags (the ``sciseg`` console script).

Importing this package (``-h``, ``-list-tasks``, installs) never imports torch or nnU-Net. :func:`main` is a
plain function for Python callers; :func:`console_main` is the command, which owns its process: SIGTERM is
handled like Ctrl-C (the file being written is finished or removed, no partial output is left, exit status
143; 130 for Ctrl-C).
"""
from __future__ import annotations

import logging
import signal
import sys
from typing import Optional, Sequence

from ..errors import SciSegError
from ..log import console_handler, logger
from ..stopping import STOP_SIGNALS, Terminated, on_signal
from ..stopping import clear as clear_stop
from .commands import cli_message, cmd_install, cmd_list_tasks, cmd_register_sct, cmd_segment, err
from .crash import internal_error
from .parser import build_parser, check_args, check_demo_args, named_task
from .preflight import UsageError

def _stopped(exc: KeyboardInterrupt) -> int:
    clear_stop()
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
    """Run ``sciseg`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    A plain function: it installs no signal handler, never restarts or ends the process and tunes nothing
    process-wide, so a Python script may call it. The ``sciseg`` command is :func:`console_main`.
    """
    try:
        return _run(argv, own_process=False)
    except KeyboardInterrupt as exc:
        return _stopped(exc)


def console_main() -> None:
    """The ``sciseg`` console script and ``python -m sct_task_sciseg``: owns its process. A segmentation
    restarts it once with huge pages for large arrays (:func:`~sct_task_sciseg.inference.tuning.restart_tuned`)
    and tunes its allocator and threads; SIGTERM is handled like Ctrl-C; once the run is over, SIGINT and
    SIGTERM are ignored and the process ends at once with the exit status."""
    for s in STOP_SIGNALS:
        signal.signal(s, on_signal)
    _line_buffered()
    try:
        code = _run(None, own_process=True)
    except KeyboardInterrupt as exc:  # a signal between the end of the run and this line
        code = _stopped(exc)
    finally:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
    _exit_now(code)


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


def _line_buffered() -> None:
    """Progress reaches logs and pipes line by line, as on a terminal (CI logs, ``sbatch`` output files)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if not stream.isatty() and not stream.line_buffering:
                stream.reconfigure(line_buffering=True)
        except (AttributeError, ValueError, OSError):  # a stream replaced by something else
            pass


def _run(argv: Optional[Sequence[str]], own_process: bool) -> int:
    handler = None
    try:
        parser = build_parser(named_task(argv))  # the help speaks of the task the command line names
        args = parser.parse_args(argv)
        check_args(parser, args)
        if args.demo:
            check_demo_args(parser, args)
        handler = console_handler(verbose=args.v >= 1)
        args.own_process = own_process
        if args.list_tasks:
            return cmd_list_tasks(args.models_dir)
        if args.install is not None:
            return cmd_install(args)
        if args.register_sct or args.unregister_sct:
            return cmd_register_sct(args)
        if not args.demo and not args.i:
            err("give an input with -i FILE (sciseg -h: every option; sciseg -demo: an offline demo)")
            return 2
        if own_process:  # restart once with huge pages for big arrays
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
    except SciSegError as exc:
        err(cli_message(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback kept in a file
        err(internal_error(exc))
        return 1
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)


__all__ = ["build_parser", "console_main", "main"]
