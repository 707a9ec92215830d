"""Model weights: download, archive extraction, the model folder, and the verified install store."""
from .locations import ENV_MODELS_DIR, ENV_RELEASE_URL, resolve_models_dir, sct_models_dir, sct_root, task_dir
from .store import MARKER, InstalledModel, ensure_installed, find_installed, install, list_installed

__all__ = ["ENV_MODELS_DIR", "ENV_RELEASE_URL", "MARKER", "InstalledModel", "ensure_installed", "find_installed",
           "install", "list_installed", "resolve_models_dir", "sct_models_dir", "sct_root", "task_dir"]
