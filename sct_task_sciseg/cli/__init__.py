"""``sciseg``: SCIseg standalone with sct_deepseg's single-dash flags (the ``sciseg`` console script).

Importing this package (``-h``, ``-list-tasks``, installs) never imports torch or nnU-Net.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence

from ..errors import SciSegError
from .commands import cli_message, cmd_install, cmd_list_tasks, cmd_register_sct, cmd_segment, err
from .parser import build_parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list_tasks:
            return cmd_list_tasks(args.models_dir)
        if args.install is not None:
            return cmd_install(args)
        if args.register_sct or args.unregister_sct:
            return cmd_register_sct(args)
        if args.demo:
            from ..demo.run import run_demo
            return run_demo(args)
        if not args.i:
            build_parser().print_usage(sys.stderr)
            err("give an input with -i (or -install-task, -list-tasks, -demo)")
            return 2
        return cmd_segment(args)
    except KeyboardInterrupt:
        err("interrupted; no partial output was left")
        return 130
    except (SciSegError, KeyError, ValueError) as exc:
        err(cli_message(exc))
        return 1


__all__ = ["build_parser", "main"]
