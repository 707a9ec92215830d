"""Where models live, and where an installed Spinal Cord Toolbox (SCT) is (found without importing it)."""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import List, Optional, Union

from ..environment import get

ENV_MODELS_DIR = "SCISEG_MODELS_DIR"
ENV_RELEASE_URL = "SCISEG_RELEASE_URL"
INSTALL_RECORD = "sciseg_install.json"  # written last into each installed release folder
SCT_PACKAGE = "spinalcordtoolbox"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")

PathLike = Union[str, Path]


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it hidden (``https://user:token@host/x`` →
    ``https://***@host/x``): what the package prints, raises and stores instead of a URL."""
    return _USERINFO.sub(r"\1***@", str(text))


def sct_root() -> Optional[Path]:
    """The SCT installation folder of the running Python (the folder holding ``spinalcordtoolbox/`` and
    ``data/``), found without importing SCT; None when this Python cannot import SCT."""
    try:
        spec = importlib.util.find_spec(SCT_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        locations = list(spec.submodule_search_locations or [])
        pkg = Path(locations[0]) if locations else (Path(spec.origin).parent if spec.origin else None)
        if pkg is not None:  # SCT computes its root the same way: realpath of its package, one level up
            return Path(os.path.realpath(pkg)).parent
    return None


def sct_models_dir(root: Optional[Path] = None) -> Optional[Path]:
    """``<SCT root>/data/deepseg_models`` (SCT's model folder) of ``root``, else of the SCT this Python imports,
    else of ``$SCT_DIR``; None without any."""
    root = root or sct_root() or (Path(os.environ["SCT_DIR"]) if os.environ.get("SCT_DIR") else None)
    return None if root is None else root / "data" / "deepseg_models"


def is_writable(path: PathLike) -> bool:
    """Whether files can be created in ``path`` (or, while it does not exist, in its nearest existing parent).
    ``os.access`` answers for read-only mounts (EROFS: Apptainer images, ``ro`` binds) as well as for
    permissions; nothing is written to find out."""
    p = Path(path).expanduser().absolute()
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def user_models_dir() -> Path:
    """``$SCISEG_MODELS_DIR``, else the platformdirs user data folder (``~/.local/share/sct_task_sciseg/models``)."""
    if get(ENV_MODELS_DIR):
        return Path(get(ENV_MODELS_DIR)).expanduser()
    import platformdirs
    return Path(platformdirs.user_data_dir("sct_task_sciseg", appauthor=False)) / "models"


def usable_sct_folder(folder: PathLike, installed: Optional[PathLike] = None) -> bool:
    """Whether this package may use SCT's model folder ``folder``: it can be written, or (read-only, e.g.
    weights baked into an image) ``installed`` there is already installed (default: any release)."""
    if is_writable(folder):
        return True
    if installed is not None:
        return (Path(installed) / INSTALL_RECORD).is_file()
    return any(Path(folder).glob(f"*/*/{INSTALL_RECORD}"))


def resolve_models_dir(explicit: Optional[PathLike] = None) -> Path:
    """explicit argument > ``$SCISEG_MODELS_DIR`` > SCT's data/deepseg_models (when it can be written, or holds
    installed releases) > the platformdirs user data folder."""
    if explicit:
        return Path(explicit).expanduser()
    if get(ENV_MODELS_DIR):
        return user_models_dir()
    sct = sct_models_dir()
    if sct is not None and sct.parent.is_dir() and usable_sct_folder(sct):
        return sct
    return user_models_dir()


def read_only_note(models_dir: PathLike) -> Optional[str]:
    """One line for installs into ``models_dir`` while SCT's model folder is read-only (else None)."""
    sct = sct_models_dir()
    if sct is None or not sct.parent.is_dir() or is_writable(sct):
        return None
    if os.path.realpath(models_dir) == os.path.realpath(sct):
        return None
    return (f"SCT's model folder {sct} is read-only: installing into {Path(models_dir)} "
            f"(set {ENV_MODELS_DIR} to choose another folder)")


def known_models_dirs() -> List[Path]:
    """Every models folder a run may use without -models-dir: ``$SCISEG_MODELS_DIR``, SCT's
    data/deepseg_models, the user data folder (those that exist, without repeats)."""
    import platformdirs
    found: List[Path] = []
    for d in (get(ENV_MODELS_DIR), sct_models_dir(),
              Path(platformdirs.user_data_dir("sct_task_sciseg", appauthor=False)) / "models"):
        if d and Path(d).expanduser().is_dir() and Path(d).expanduser().resolve() not in {f.resolve() for f in found}:
            found.append(Path(d).expanduser())
    return found


def task_dir(task, models_dir: Optional[PathLike] = None) -> Path:
    return resolve_models_dir(models_dir) / task.name


def release_base_urls(task) -> List[str]:
    """``$SCISEG_RELEASE_URL`` (one or more base URLs, comma/space separated) replaces upstream."""
    env = (get(ENV_RELEASE_URL) or "").replace(",", " ").split()
    return env or [task.base_url]
