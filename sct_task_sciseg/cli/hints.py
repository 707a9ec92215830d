"""Core errors' hints, worded for the command line."""
from __future__ import annotations

from ..errors import Hint, SciSegError


def cli_hint(hint: Hint) -> str:
    p = hint.params
    spec = f"{p.get('task')}@{p.get('tag')}"
    if hint.action == "reinstall":
        return f"reinstall with `sciseg -install-task {spec} -force`"
    if hint.action == "offline-install":
        asset = p.get("asset") or "FILE.zip"
        return (f"offline? copy {asset} here and run `sciseg -install-task {spec} -custom-url /path/to/{asset}`, "
                f"or set SCISEG_RELEASE_URL to a mirror")
    if hint.action == "models-dir":
        return "set SCISEG_MODELS_DIR or pass -models-dir"
    if hint.action == "mirror":
        return "check the network or set SCISEG_RELEASE_URL to a mirror"
    if hint.action == "runtime":
        return ('outside SCT: `pip install "sct_task_sciseg[standalone]"`; inside SCT: run sciseg with SCT\'s '
                "own Python, which has them")
    if hint.action == "repair-nnunet":
        return f"repair it with `{p.get('command')}`"
    return hint.text()


def cli_message(exc: BaseException) -> str:
    """The one line the CLI prints for ``exc``."""
    if isinstance(exc, SciSegError):
        return f"{exc.message}; {cli_hint(exc.hint)}" if exc.hint else exc.message
    return str(exc.args[0]) if exc.args else str(exc)
