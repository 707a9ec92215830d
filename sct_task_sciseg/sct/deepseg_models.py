"""Registration into SCT's ``MODELS`` / ``TASKS`` dicts, and the two SCT functions routed through this package.

SCT has no plugin mechanism: its tasks are two dicts in ``spinalcordtoolbox.deepseg.models``, ``MODELS`` (one
entry per weights folder) and ``TASKS`` (one entry per ``sct_deepseg`` task). :func:`register` adds entries
shaped like the running SCT's own (detected by the keys its entries use, never by version strings, since git
installs report ``git-<branch>-<sha>``) and routes SCT's install/up-to-date checks for them through this
package's verified installer.

Where SCT's model folder cannot be written (Apptainer, a shared read-only install), SCT's ``folder()`` is routed
to the user models folder for this package's keys only, so nothing is ever written inside SCT's tree.
Registration is all-or-none: on any failure SCT's dicts and functions are left exactly as they were.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .. import __version__
from ..environment import get
from ..errors import SciSegError
from ..log import logger
from ..tasks import Release, Task, all_tasks, get_task
from ..weights import locations
from .install import install_for_sct, sct_model_ok
from .spec import ModelSpec, canonical_url, model_key

MODELS_MODULE = "spinalcordtoolbox.deepseg.models"
PATCHED = ("folder", "install_model", "is_up_to_date")  # SCT functions routed for this package's keys
STATE_ATTR = "_sct_task_sciseg_state"
ENV_REPLACE = "SCISEG_SCT_REPLACE_BUILTIN"
ENV_RELEASE = "SCISEG_SCT_RELEASE"

# sct_deepseg changes behaviour when a task name (6.x: also the model path) contains one of these.
RESERVED_SUBSTRINGS = ("tumor", "epi", "mouse", "mice", "rootlets", "spine", "canal", "lesion_ms",
                       "totalspineseg")


@dataclass
class Registration:
    """What :func:`register` did to SCT's dicts."""

    model: ModelSpec  # the first task's (the default task, unless one was given)
    names: Tuple[str, ...]  # tasks now served by this package (every registered task's)
    replaced: Tuple[str, ...]  # SCT's own tasks whose entries were replaced or redirected
    features: Dict[str, bool] = field(default_factory=dict)
    models: Tuple[ModelSpec, ...] = ()  # every registered task's model, ``model`` first


def features(models: Any) -> Dict[str, bool]:
    """Which keys the running SCT's entries use (6.x: none of these; 7.0+: task citation/group/priority;
    7.2+: model framework, which 7.2+ reads for every model)."""
    model_entries = [v for v in getattr(models, "MODELS", {}).values() if isinstance(v, dict)]
    task_entries = [v for v in getattr(models, "TASKS", {}).values() if isinstance(v, dict)]
    return {
        "model_framework": any("framework" in v for v in model_entries),
        "task_citation": any("citation" in v for v in task_entries),
        "task_group": any("group" in v for v in task_entries),
        "task_priority": any("priority" in v for v in task_entries),
        # read from SCT's sources next to the models module (True when they cannot be read)
        # 6.4+: loads the one nnUNetTrainer* folder inside the model folder (6.2-6.3: fold_* directly)
        "trainer_folder": _source_mentions(models, "nnunet.py", "nnUNetTrainer*"),
        # 6.5+: model orientation from dataset.json (6.4: RPI only when the dataset name contains "SCI")
        "dataset_orientation": _source_mentions(models, "inference.py", "image_orientation"),
    }


def _source_mentions(models: Any, filename: str, text: str) -> bool:
    module_file = getattr(models, "__file__", None)
    if not module_file:
        return True
    try:
        return text in (Path(module_file).parent / filename).read_text(encoding="utf-8")
    except OSError:
        return True


def check_name(name: str) -> None:
    """Refuse names that ``sct_deepseg`` special-cases by substring (or that break its folder logic)."""
    bad = [s for s in RESERVED_SUBSTRINGS if s in name.lower()]
    if bad:
        raise ValueError(f"{name!r} contains {', '.join(repr(b) for b in bad)}, which sct_deepseg treats "
                         "specially; choose another name")


def _state(models: Any) -> Optional[dict]:
    return getattr(models, STATE_ATTR, None)


def _builtin_models(models: Any, task: Task, own_keys: Iterable[str]) -> List[str]:
    """SCT's own model keys for this task: the task's sct_model_key, or any model whose URL list holds one of
    the task's upstream release URLs."""
    own = set(own_keys)
    urls = {canonical_url(task, r) for r in task.releases if not r.embedded}
    found = []
    for key, entry in models.MODELS.items():
        if key in own or not isinstance(entry, dict):
            continue
        entry_urls = entry.get("url")
        if key == task.sct_model_key or (isinstance(entry_urls, list) and urls & set(entry_urls)):
            found.append(key)
    return found


def _model_entry(task: Task, release: Release, feats: Dict[str, bool]) -> dict:
    entry = {
        "url": [canonical_url(task, release)],
        "description": f"{task.description} [sct_task_sciseg, release {release.tag}]",
        "contrasts": list(task.contrasts),
        "thr": None,  # the outputs are already binary masks split from the label map
        "default": False,
    }
    if feats["model_framework"]:
        entry["framework"] = "nnunetv2"
    return entry


def _task_entry(task: Task, release: Release, key: str, feats: Dict[str, bool],
                builtin_entry: Optional[dict]) -> dict:
    long_description = (
        f"{task.long_description} Served by sct_task_sciseg {__version__}, release {release.tag}: "
        f"{release.description}. Downloaded with timeouts and resume, sha256-verified and installed "
        f"atomically; the same copy is used by the `sciseg` command."
    )
    entry = {
        "description": (task.short_description or task.description),
        "long_description": long_description,
        "url": task.code_url or task.base_url,
        "models": [key],
    }
    if feats["task_citation"]:
        entry["citation"] = task.citation
    if feats["task_group"]:
        entry["group"] = (builtin_entry or {}).get("group", "pathology")
    if feats["task_priority"]:
        entry["priority"] = (builtin_entry or {}).get("priority", 0)
    return entry


def _release_for_sct(task: Task, tag: Optional[str]) -> Release:
    tag = tag or get(ENV_RELEASE) or None
    return task.release(tag)


def register(models: Any = None, *, replace_builtin: bool = False, task: Optional[Task] = None,
             tag: Optional[str] = None) -> Registration:
    """Add ``task`` (default: every installed task, :func:`~sct_task_sciseg.tasks.all_tasks`, the default task
    first) to SCT's ``MODELS``/``TASKS`` (``models`` = the ``spinalcordtoolbox.deepseg.models`` module, imported
    when None) and route SCT's install of their models through this package's installer.

    Idempotent: registering again first undoes the previous registration. ``tag`` (or
    ``$SCISEG_SCT_RELEASE``) picks a release other than the default one of ``task`` (or of the default task).
    An installed task that cannot be registered (a name SCT special-cases, a name already taken by an earlier
    task) is left out with a warning; the default or given task's problems are errors.
    """
    if models is None:
        import importlib

        models = importlib.import_module(MODELS_MODULE)
    if _state(models) is not None:
        unregister(models)
    feats = features(models)
    if not feats["trainer_folder"]:
        raise SciSegError("this SCT loads nnU-Net folds directly from its model folder (SCT 6.3 or older); "
                          "sct_task_sciseg needs SCT 6.4 or newer")
    missing = [n for n in PATCHED + ("MODELS", "TASKS") if not hasattr(models, n)]
    if missing:
        raise SciSegError(f"{getattr(models, '__name__', 'SCT models')} has no {', '.join(missing)}: this SCT's "
                          "model registry is not one sct_task_sciseg knows")
    first = task or get_task(None)
    plans = [_plan(models, first, _release_for_sct(first, tag), feats, replace_builtin, set())]
    if task is None:
        for other in all_tasks().values():
            if other.name == first.name:
                continue
            taken = {n for plan in plans for n in plan[1]} | {plan[0].key for plan in plans}
            try:
                plans.append(_plan(models, other, other.default_release, feats, replace_builtin, taken))
            except (ValueError, SciSegError) as exc:
                logger.warning(f"task {other.name} is not registered with SCT: {exc}")
    return _apply(models, plans, feats)


def _plan(models: Any, task: Task, release: Release, feats: Dict[str, bool], replace_builtin: bool,
          taken: set) -> Tuple[ModelSpec, List[str], dict, dict]:
    """(model spec, task names, MODELS entry, TASKS entry) of one task; ``taken``: names and model keys of
    tasks registered before it."""
    key = model_key(task, release)
    if task.name in taken or key in taken:
        raise ValueError(f"{task.name!r} (model {key}) is already registered by another task")
    sct_dir = Path(models.folder(key)).parent.parent
    models_dir = sct_dir if locations.usable_sct_folder(sct_dir, sct_dir / key) else locations.user_models_dir()
    spec = ModelSpec(key=key, task=task.name, tag=release.tag, url=canonical_url(task, release),
                     dataset_orientation=feats["dataset_orientation"], models_dir=str(models_dir),
                     sct_models_dir=str(sct_dir))
    builtin_models = _builtin_models(models, task, [key])
    builtin_tasks = [n for n, t in models.TASKS.items()
                     if isinstance(t, dict) and set(t.get("models", [])) & set(builtin_models)]
    names = [task.name] + [a for a in task.aliases if (a not in models.TASKS or replace_builtin) and a not in taken]
    if replace_builtin:
        names += [n for n in builtin_tasks if n not in names and n not in taken]
    for name in names + [key]:
        check_name(name)
    template = models.TASKS.get(builtin_tasks[0]) if builtin_tasks else None
    return spec, names, _model_entry(task, release, feats), _task_entry(task, release, key, feats, template)


def _apply(models: Any, plans: List[Tuple[ModelSpec, List[str], dict, dict]],
           feats: Dict[str, bool]) -> Registration:
    """Change SCT's dicts and functions in one go (everything is computed), keeping what is needed to undo
    it; any failure on the way undoes what was done and re-raises."""
    MODELS, TASKS = models.MODELS, models.TASKS
    keys = [plan[0].key for plan in plans]
    names = [n for plan in plans for n in plan[1]]
    state = {
        "models": {plan[0].key: plan[0] for plan in plans},
        "saved_models": {k: MODELS[k] for k in keys if k in MODELS},
        "added_models": [k for k in keys if k not in MODELS],
        "saved_tasks": {n: TASKS[n] for n in names if n in TASKS},
        "added_tasks": [n for n in names if n not in TASKS],
        "functions": {n: getattr(models, n) for n in PATCHED},
    }
    try:
        for spec, task_names, model_entry, task_entry in plans:
            MODELS[spec.key] = model_entry
            for name in task_names:
                TASKS[name] = dict(task_entry)
        for name, make in zip(PATCHED, (_make_folder, _make_install_model, _make_is_up_to_date)):
            _patch(models, name, make)
        replaced = tuple(n for n in names if n in state["saved_tasks"])
        state["registration"] = Registration(plans[0][0], tuple(names), replaced, feats,
                                             tuple(plan[0] for plan in plans))
        setattr(models, STATE_ATTR, state)
    except BaseException:
        _restore(models, state)
        raise
    return state["registration"]


def _restore(models: Any, state: dict) -> None:
    """Put SCT's dicts and functions back as ``state`` recorded them (each step on its own, so one failure
    does not stop the others)."""
    steps = [lambda k=k: models.MODELS.pop(k, None) for k in state["added_models"]]
    steps += [lambda: models.MODELS.update(state["saved_models"])]
    steps += [lambda n=n: models.TASKS.pop(n, None) for n in state["added_tasks"]]
    steps += [lambda: models.TASKS.update(state["saved_tasks"])]
    steps += [lambda n=n, f=f: setattr(models, n, f) for n, f in state["functions"].items()]
    steps += [lambda: models.__dict__.pop(STATE_ATTR, None)]
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - restore as much as possible
            pass


def unregister(models: Any = None) -> bool:
    """Undo :func:`register` in this process (SCT's dicts and functions as they were). Returns whether
    anything was registered."""
    if models is None:
        models = sys.modules.get(MODELS_MODULE)
        if models is None:
            return False
    state = _state(models)
    if state is None:
        return False
    _restore(models, state)
    return True


def registration(models: Any = None) -> Optional[Registration]:
    """The current registration in this process, if any."""
    models = models if models is not None else sys.modules.get(MODELS_MODULE)
    state = _state(models) if models is not None else None
    return state["registration"] if state else None


def _patch(models: Any, name: str, make) -> None:
    current = getattr(models, name)
    original = getattr(current, "_sciseg_original", current)
    wrapper = make(models, original)
    wrapper._sciseg_original = original
    wrapper.__doc__ = original.__doc__
    wrapper.__name__ = getattr(original, "__name__", name)
    setattr(models, name, wrapper)


def _spec_for_key(models: Any, name_model: str) -> Optional[ModelSpec]:
    state = _state(models)
    return state["models"].get(name_model) if state else None


def _spec_for_path(models: Any, path_model: str) -> Optional[ModelSpec]:
    state = _state(models)
    if not state:
        return None
    target = os.path.realpath(str(path_model))
    for key, spec in state["models"].items():
        if os.path.realpath(models.folder(key)) == target:
            return spec
    return None


def one_url(custom_url: Any) -> Optional[str]:
    """SCT's ``custom_url``: one string (up to 7.3) or a list of URLs, one per fold (SCT's development head,
    PR #5283, ``-custom-url URL`` → ``[URL]``). This package's releases are one archive: one URL."""
    if custom_url is None or isinstance(custom_url, str):
        return custom_url or None
    urls = [u for u in custom_url if u]
    if len(urls) > 1:
        raise SciSegError(f"-custom-url: this task's release is one archive; got {len(urls)} URLs ({urls})")
    return urls[0] if urls else None


def _make_folder(models: Any, original):
    def folder(name_model, *args, **kwargs):
        spec = _spec_for_key(models, name_model)
        if spec is None or not spec.models_dir:
            return original(name_model, *args, **kwargs)
        return os.path.join(spec.models_dir, name_model)

    return folder


def _make_install_model(models: Any, original):
    def install_model(name_model, *args, **kwargs):
        spec = _spec_for_key(models, name_model)
        if spec is None:
            return original(name_model, *args, **kwargs)
        custom_url = args[0] if args else kwargs.get("custom_url")
        install_for_sct(models, spec, custom_url=one_url(custom_url))
        return None

    return install_model


def _make_is_up_to_date(models: Any, original):
    def is_up_to_date(path_model, *args, **kwargs):
        spec = _spec_for_path(models, path_model)
        if spec is None:
            return original(path_model, *args, **kwargs)
        return sct_model_ok(models, spec)

    return is_up_to_date
