"""Where models live, and where an installed Spinal Cord Toolbox (SCT) is (found without importing it)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import List, Optional, Union

ENV_MODELS_DIR = "SCISEG_MODELS_DIR"
ENV_RELEASE_URL = "SCISEG_RELEASE_URL"
SCT_PACKAGE = "spinalcordtoolbox"

PathLike = Union[str, Path]


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


def resolve_models_dir(explicit: Optional[PathLike] = None) -> Path:
    """explicit argument > ``$SCISEG_MODELS_DIR`` > SCT's data/deepseg_models > platformdirs user data dir."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_MODELS_DIR):
        return Path(os.environ[ENV_MODELS_DIR]).expanduser()
    sct = sct_models_dir()
    if sct is not None and sct.parent.is_dir():
        return sct
    import platformdirs
    return Path(platformdirs.user_data_dir("sct_task_sciseg", appauthor=False)) / "models"


def known_models_dirs() -> List[Path]:
    """Every models folder a run may use without -models-dir: ``$SCISEG_MODELS_DIR``, SCT's
    data/deepseg_models, the user data folder (those that exist, without repeats)."""
    import platformdirs
    found: List[Path] = []
    for d in (os.environ.get(ENV_MODELS_DIR), sct_models_dir(),
              Path(platformdirs.user_data_dir("sct_task_sciseg", appauthor=False)) / "models"):
        if d and Path(d).expanduser().is_dir() and Path(d).expanduser().resolve() not in {f.resolve() for f in found}:
            found.append(Path(d).expanduser())
    return found


def task_dir(task, models_dir: Optional[PathLike] = None) -> Path:
    return resolve_models_dir(models_dir) / task.name


def release_base_urls(task) -> List[str]:
    """``$SCISEG_RELEASE_URL`` (one or more base URLs, comma/space separated) replaces upstream."""
    env = os.environ.get(ENV_RELEASE_URL, "").replace(",", " ").split()
    return env or [task.base_url]
