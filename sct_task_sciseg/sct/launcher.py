"""``sct_deepseg_sciseg``: register, then run SCT's ``sct_deepseg`` in this process; and
``python -m sct_task_sciseg.sct register [--env] [--replace-builtin]|unregister|status``."""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from ..errors import SciSegError
from ..sct_hook import flag as _env_flag
from ..weights import locations
from .startup_files import hook_enabled, hook_path, install_hook, uninstall_hook
from .locate import sct_cli_style, sct_version
from .deepseg_models import ENV_REPLACE, MODELS_MODULE, register


def _launcher_environment() -> None:
    """What SCT's launcher sets for its child process and that matters in-process."""
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(os.cpu_count() or 1))
    os.environ.setdefault("VXM_BACKEND", "pytorch")
    os.environ.setdefault("NEURITE_BACKEND", "pytorch")
    os.environ.setdefault("NUMEXPR_MAX_THREADS", str(os.cpu_count() or 1))


def deepseg_main(argv: Optional[Sequence[str]] = None) -> int:
    """``sct_deepseg_sciseg ARGS`` = ``sct_deepseg ARGS`` with this package's tasks registered, no startup
    hook needed. Takes the running SCT's syntax (6.x ``-task NAME``, 7.x ``NAME ...``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if locations.sct_root() is None:
        print(f"error: Spinal Cord Toolbox is not installed in this Python ({sys.executable}); "
              "install sct_task_sciseg into SCT's environment and run its sct_deepseg_sciseg", file=sys.stderr)
        return 2
    _launcher_environment()
    import importlib

    from ..sct_hook import installed_finder

    finder = installed_finder()  # a startup hook may already have registered, maybe replacing built-ins
    replace = _env_flag(ENV_REPLACE) or bool(finder is not None and finder.replace_builtin)
    models = importlib.import_module(MODELS_MODULE)
    register(models, replace_builtin=replace)
    from spinalcordtoolbox.scripts import sct_deepseg
    from spinalcordtoolbox.utils.sys import init_sct

    init_sct()
    try:
        sct_deepseg.main(argv)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------------------------------------
def hook_command(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m sct_task_sciseg.sct register|unregister|status [--replace-builtin] [--env]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sct_task_sciseg.sct")
    parser.add_argument("action", choices=("register", "unregister", "status"))
    parser.add_argument("--replace-builtin", action="store_true",
                        help="also redirect SCT's own SCIseg task (7.x: lesion_sci_t2) to this package")
    parser.add_argument("--env", action="store_true",
                        help="write nothing; print the PYTHONPATH that enables the hook (automatic where SCT's "
                             "site-packages is read-only)")
    args = parser.parse_args(argv)
    try:
        if args.action == "register":
            lines = install_hook(replace_builtin=args.replace_builtin, env_route=args.env)
        elif args.action == "unregister":
            lines = uninstall_hook()
        else:
            root = locations.sct_root()
            lines = [f"SCT: {root or 'not installed in this Python'}"
                     + (f" (version {sct_version(root)}, {sct_cli_style(root)} syntax)" if root else ""),
                     f"startup hook: {'enabled' if hook_enabled() else 'not enabled'} ({hook_path()})"]
    except SciSegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0
