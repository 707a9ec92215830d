"""Can a model run in this Python? torch and nnU-Net installed, one nnU-Net distribution, a supported release;
found from package metadata, before torch or nnU-Net is imported."""
from __future__ import annotations

import sys
from typing import Dict, Optional, Tuple

from ..errors import Hint, ModelError, SciSegError

DISTRIBUTIONS = ("nnunetv2", "nnunetv2-neuropoly")  # stock nnU-Net, SCT 7.x's fork (both import as nnunetv2)
OLDEST_SUPPORTED = (2, 3, 1)
NEWEST_TESTED = (2, 8, 1)
BROKEN = ((2, 4, 0), (2, 4, 1), (2, 4, 2))  # crash in predict_single_npy_array / empty SCIseg cords (SCT #4556)


def installed_version() -> Tuple[str, str]:
    """(distribution, version) of the installed nnU-Net; ``("", "")`` when there is none."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in DISTRIBUTIONS:
        try:
            return dist, version(dist)
        except PackageNotFoundError:
            continue
    return "", ""


def version_tuple(text: str) -> Tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def version_problem() -> Optional[str]:
    """Why the installed nnunetv2 must not be used at all (too old, or a release known to be broken)."""
    dist, ver = installed_version()
    if not ver:
        return "nnU-Net (nnunetv2) is not installed"
    vt = version_tuple(ver)
    if vt < OLDEST_SUPPORTED:
        return f"{dist} {ver} is older than the oldest supported (2.3.1)"
    if dist == "nnunetv2" and vt in BROKEN:
        return f"{dist} {ver} is known to be broken for SCIseg (use 2.3.1 or 2.4.3+)"
    return None


def installed_distributions() -> Dict[str, str]:
    """Every installed distribution that provides the ``nnunetv2`` module, with its version."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return found


def repair_command(fork_version: str) -> str:
    """The commands that give SCT 7.x back its own nnU-Net after PyPI's nnunetv2 was installed over it."""
    py = sys.executable
    pins = [f"nnunetv2-neuropoly=={fork_version}"]
    from ..weights.locations import sct_root
    root = sct_root()
    freeze = root / "requirements-freeze.txt" if root else None
    if freeze is not None and freeze.is_file():
        pins += [line.split("#")[0].strip() for line in freeze.read_text().splitlines()
                 if line.split("==")[0].strip().lower().replace("-", "_") == "dynamic_network_architectures"]
    return f"{py} -m pip uninstall -y nnunetv2 && {py} -m pip install --force-reinstall --no-deps {' '.join(pins)}"


def runtime_problem() -> Optional[SciSegError]:
    """Why no model can run in this Python: torch or nnU-Net missing, two nnU-Nets installed over each other
    (PyPI's ``nnunetv2`` beside SCT 7.x's ``nnunetv2-neuropoly``: SCT's sct_deepseg is broken), or an nnU-Net
    release that must not be used. None when a model can run."""
    from ..machine import module_available

    found = installed_distributions()
    if len(found) > 1:
        both = ", ".join(f"{d} {v}" for d, v in found.items())
        return ModelError(f"two distributions provide the nnunetv2 module ({both}): one overwrote the other's "
                          "files, and SCT's sct_deepseg fails in this environment",
                          Hint("repair-nnunet", {"command": repair_command(found["nnunetv2-neuropoly"])}))
    missing = [name for name in ("torch", "nnunetv2") if not module_available(name)]
    if missing:
        return ModelError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed in this "
                          f"Python ({sys.executable})", Hint("runtime"))
    problem = version_problem()
    return ModelError(problem) if problem else None


def require_runtime() -> None:
    """Raise :func:`runtime_problem`'s error, if any (before torch or nnU-Net is imported)."""
    problem = runtime_problem()
    if problem is not None:
        raise problem
