"""Facts about the SCT installed in this Python, read from its files (no SCT import)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from ..weights import locations

SCT_PACKAGE = locations.SCT_PACKAGE


def sct_version(root: Optional[Path] = None) -> Optional[str]:
    """SCT's version.txt (a release number, or ``dev`` on git checkouts); for display only."""
    root = root if root is not None else locations.sct_root()
    if root is None:
        return None
    try:
        return (root / SCT_PACKAGE / "version.txt").read_text().strip()
    except OSError:
        return None


def sct_cli_style(root: Optional[Path] = None) -> str:
    """``"subcommand"`` (7.x: ``sct_deepseg TASK -i …``) or ``"flag"`` (6.x: ``sct_deepseg -task TASK -i …``),
    read from SCT's sct_deepseg script (not its version)."""
    root = root if root is not None else locations.sct_root()
    try:
        text = (root / SCT_PACKAGE / "scripts" / "sct_deepseg.py").read_text(encoding="utf-8")
    except (OSError, TypeError):
        return "subcommand"
    return "subcommand" if "add_subparsers(" in text else "flag"


def usage_hint(task_name: str, style: str) -> Tuple[str, str]:
    """(install command, segment command) for ``task_name`` in the given CLI style."""
    if style == "flag":
        return (f"sct_deepseg -install-task {task_name}", f"sct_deepseg -i IMAGE.nii.gz -task {task_name}")
    return (f"sct_deepseg {task_name} -install", f"sct_deepseg {task_name} -i IMAGE.nii.gz")
