"""Spinal Cord Toolbox (SCT) adapter: makes ``sct_deepseg`` run this package's tasks.

SCT has no plugin mechanism: its tasks are two dicts in ``spinalcordtoolbox.deepseg.models``, ``MODELS`` (one
entry per weights folder) and ``TASKS`` (one entry per ``sct_deepseg`` task). :func:`register` adds entries
shaped like the running SCT's own (detected by the keys its entries use, never by version strings, since git
installs report ``git-<branch>-<sha>``) and routes SCT's install/up-to-date checks for them through this
package's verified installer. The weights land in SCT's model folder in this package's layout,
``<SCT>/data/deepseg_models/<task>/<tag>/nnUNetTrainer…/``, which is SCT's own layout for the model key
``<task>/<tag>``: SCT and the ``sciseg`` command share one verified copy, and a new pinned release gets a new
key (and folder) instead of replacing the old one in place.

Three ways in, all cheap until SCT actually imports its model registry (no torch, no SCT import here):

* :func:`install_hook` (``sciseg -register-sct``): a ``.pth`` startup hook in SCT's site-packages
  (see :mod:`sct_task_sciseg.sct_hook`), so plain ``sct_deepseg`` knows the task;
* :func:`deepseg_main` (the ``sct_deepseg_sciseg`` command): registers, then calls ``sct_deepseg``'s ``main()``
  in-process, for users who do not want a startup hook;
* :func:`register` from Python, after ``import spinalcordtoolbox.deepseg.models``.

Names: this package's task name ``seg_sc_lesion_t2w_sci`` is SCT 6.x's own name for the same model, so on 6.x
the built-in entry is replaced (the user asked for the verified release by installing this package); SCT 7.x
calls its built-in ``lesion_sci_t2``, which is left alone unless ``replace_builtin=True`` (or
``SCISEG_SCT_REPLACE_BUILTIN=1``) redirects it to this package's model too.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .errors import InstallError, ModelError, SciSegError
from .task import SCISEG, Release, Task

SCT_PACKAGE = "spinalcordtoolbox"
MODELS_MODULE = "spinalcordtoolbox.deepseg.models"
PTH_NAME = "sct_task_sciseg_sct_hook.pth"
STATE_ATTR = "_sct_task_sciseg_state"
ENV_REPLACE = "SCISEG_SCT_REPLACE_BUILTIN"
ENV_RELEASE = "SCISEG_SCT_RELEASE"

# sct_deepseg changes behaviour when a task name (6.x: also the model path) contains one of these.
RESERVED_SUBSTRINGS = ("tumor", "epi", "mouse", "mice", "rootlets", "spine", "canal", "lesion_ms",
                       "totalspineseg")


# One line for SCT's task table (SCT pads descriptions to 50 columns).
SHORT_DESCRIPTIONS = {SCISEG.name: "SCI lesion and spinal cord segmentation on T2w MRI (SCIseg, verified install)"}


class SctNotFoundError(SciSegError):
    """SCT is not installed in the running Python environment."""


# --------------------------------------------------------------------------------------------------------
# Finding SCT (no import of SCT, torch or nnU-Net)
# --------------------------------------------------------------------------------------------------------
def sct_root() -> Optional[Path]:
    """The SCT installation folder of the running Python (the folder holding ``spinalcordtoolbox/`` and
    ``data/``), found without importing SCT; None when SCT is not installed here."""
    try:
        spec = importlib.util.find_spec(SCT_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if locations:
        pkg = Path(locations[0])
    elif spec.origin:
        pkg = Path(spec.origin).parent
    else:
        return None
    # SCT computes its root the same way: realpath of its package, one level up
    return Path(os.path.realpath(pkg)).parent


def sct_models_dir(root: Optional[Path] = None) -> Optional[Path]:
    """``<SCT root>/data/deepseg_models`` (SCT's model folder), or None without SCT."""
    root = root if root is not None else sct_root()
    return None if root is None else root / "data" / "deepseg_models"


def sct_version(root: Optional[Path] = None) -> Optional[str]:
    """SCT's version.txt (a release number, or ``dev`` on git checkouts); for display only."""
    root = root if root is not None else sct_root()
    if root is None:
        return None
    try:
        return (root / SCT_PACKAGE / "version.txt").read_text().strip()
    except OSError:
        return None


def sct_cli_style(root: Optional[Path] = None) -> str:
    """``"subcommand"`` (7.x: ``sct_deepseg TASK -i …``) or ``"flag"`` (6.x: ``sct_deepseg -task TASK -i …``),
    read from SCT's sct_deepseg script (not its version)."""
    root = root if root is not None else sct_root()
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


# --------------------------------------------------------------------------------------------------------
# Registration into SCT's MODELS / TASKS
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """One SCT model key served by this package."""

    key: str  # "<task name>/<tag>": SCT's folder(key) is this package's release folder
    task: str
    tag: str
    url: str  # the canonical (upstream) URL of the release: what source.json records
    dataset_orientation: bool = True  # SCT reads dataset.json["image_orientation"] (6.5+)


@dataclass
class Registration:
    """What :func:`register` did to SCT's dicts."""

    model: ModelSpec
    names: Tuple[str, ...]  # tasks now served by this package
    replaced: Tuple[str, ...]  # SCT's own tasks whose entries were replaced or redirected
    features: Dict[str, bool] = field(default_factory=dict)


def model_key(task: Task, release: Release) -> str:
    return f"{task.name}/{release.tag}"


def canonical_url(task: Task, release: Release) -> str:
    return release.url(task.base_url)


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
    from . import __version__

    long_description = (
        f"{task.long_description} Served by sct_task_sciseg {__version__}, release {release.tag}: "
        f"{release.description}. Downloaded with timeouts and resume, sha256-verified and installed "
        f"atomically; the same copy is used by the `sciseg` command."
    )
    entry = {
        "description": (SHORT_DESCRIPTIONS.get(task.name) or task.description),
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
    tag = tag or os.environ.get(ENV_RELEASE) or None
    return task.release(tag)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def register(models: Any = None, *, replace_builtin: bool = False, task: Task = SCISEG,
             tag: Optional[str] = None) -> Registration:
    """Add ``task`` to SCT's ``MODELS``/``TASKS`` (``models`` = the ``spinalcordtoolbox.deepseg.models``
    module, imported when None) and route SCT's install of its model through this package's installer.

    Idempotent: registering again first undoes the previous registration. ``tag`` (or
    ``$SCISEG_SCT_RELEASE``) picks a release other than the task's default one.
    """
    if models is None:
        import importlib

        models = importlib.import_module(MODELS_MODULE)
    if _state(models) is not None:
        unregister(models)
    release = _release_for_sct(task, tag)
    key = model_key(task, release)
    feats = features(models)
    if not feats["trainer_folder"]:
        raise SciSegError("this SCT loads nnU-Net folds directly from its model folder (SCT 6.3 or older); "
                          "sct_task_sciseg needs SCT 6.4 or newer")
    spec = ModelSpec(key=key, task=task.name, tag=release.tag, url=canonical_url(task, release),
                     dataset_orientation=feats["dataset_orientation"])
    MODELS, TASKS = models.MODELS, models.TASKS

    builtin_models = _builtin_models(models, task, [key])
    builtin_tasks = [n for n, t in TASKS.items()
                     if isinstance(t, dict) and set(t.get("models", [])) & set(builtin_models)]
    names = [task.name] + [a for a in task.aliases if a not in TASKS or replace_builtin]
    if replace_builtin:
        names += [n for n in builtin_tasks if n not in names]
    for name in names + [key]:
        check_name(name)
    template = TASKS.get(builtin_tasks[0]) if builtin_tasks else None
    task_entry = _task_entry(task, release, key, feats, template)
    model_entry = _model_entry(task, release, feats)

    # Everything is computed: now change SCT's dicts in one go, keeping what is needed to undo it.
    state = {
        "models": {key: spec},
        "saved_models": {key: MODELS[key]} if key in MODELS else {},
        "added_models": [] if key in MODELS else [key],
        "saved_tasks": {n: TASKS[n] for n in names if n in TASKS},
        "added_tasks": [n for n in names if n not in TASKS],
    }
    MODELS[key] = model_entry
    for name in names:
        TASKS[name] = dict(task_entry)
    _patch(models, "install_model", _make_install_model)
    _patch(models, "is_up_to_date", _make_is_up_to_date)
    replaced = tuple(n for n in names if n in state["saved_tasks"])
    state["registration"] = Registration(spec, tuple(names), replaced, feats)
    setattr(models, STATE_ATTR, state)
    return state["registration"]


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
    for key in state["added_models"]:
        models.MODELS.pop(key, None)
    models.MODELS.update(state["saved_models"])
    for name in state["added_tasks"]:
        models.TASKS.pop(name, None)
    models.TASKS.update(state["saved_tasks"])
    for name in ("install_model", "is_up_to_date"):
        current = getattr(models, name, None)
        original = getattr(current, "_sciseg_original", None)
        if original is not None:
            setattr(models, name, original)
    delattr(models, STATE_ATTR)
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


def _deepseg_dir(models: Any, spec: ModelSpec) -> Path:
    """SCT's model folder, derived from SCT's own ``folder()`` (``folder(key)`` = ``<dir>/<task>/<tag>``)."""
    return Path(models.folder(spec.key)).parent.parent


def _make_install_model(models: Any, original):
    def install_model(name_model, *args, **kwargs):
        spec = _spec_for_key(models, name_model)
        if spec is None:
            return original(name_model, *args, **kwargs)
        custom_url = args[0] if args else kwargs.get("custom_url")
        install_for_sct(models, spec, custom_url=custom_url)
        return None

    return install_model


def _make_is_up_to_date(models: Any, original):
    def is_up_to_date(path_model, *args, **kwargs):
        spec = _spec_for_path(models, path_model)
        if spec is None:
            return original(path_model, *args, **kwargs)
        return sct_model_ok(models, spec)

    return is_up_to_date


def _tmp_name(path: Path) -> Path:
    import uuid

    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _write_source_json(folder: Path, spec: ModelSpec, installed) -> Path:
    from . import __version__

    data = {
        # the three keys SCT reads: its up-to-date check compares model_urls with MODELS[key]['url']
        "model_name": spec.key,
        "model_urls": installed.url if installed.custom else spec.url,
        "custom": bool(installed.custom),
        # provenance for people (SCT ignores these)
        "installed_by": f"sct_task_sciseg {__version__}",
        "release": spec.tag,
        "sha256": installed.sha256,
        "downloaded_from": installed.url,
    }
    path = folder / "source.json"
    tmp = _tmp_name(path)
    tmp.write_text(json.dumps(data, indent=4) + "\n")
    os.replace(tmp, path)
    return path


def _task(spec: ModelSpec) -> Task:
    from .task import get_task

    return get_task(spec.task)


def _check_sct_layout(folder: Path, spec: ModelSpec) -> None:
    """SCT loads the one ``nnUNetTrainer*`` folder directly inside ``folder(key)``; SCT 6.4 takes the model
    orientation (RPI) from the dataset name, which must then contain "SCI"."""
    trainers = sorted(p for p in folder.glob("nnUNetTrainer*") if p.is_dir())
    if len(trainers) != 1:
        raise InstallError(f"{folder}: SCT needs exactly one nnUNetTrainer* folder here, found "
                           f"{[t.name for t in trainers] or 'none'}; reinstall with "
                           f"`sciseg -install-task {spec.task}@{spec.tag} -force`")
    if not spec.dataset_orientation:
        try:
            name = json.loads((trainers[0] / "plans.json").read_text()).get("dataset_name", "")
        except (OSError, ValueError):
            name = ""
        if "SCI" not in name:
            raise InstallError(f"{trainers[0]}: this SCT (6.4) would run dataset {name!r} in LPI instead of "
                               "RPI (it ignores dataset.json's image_orientation); use SCT 6.5+ or `sciseg`")


def install_for_sct(models: Any, spec: ModelSpec, custom_url: Optional[str] = None, force: bool = False):
    """SCT's ``install_model`` for this package's keys: the verified installer, into SCT's model folder,
    then the ``source.json`` SCT expects. ``custom_url`` (``-custom-url``) is a download source for the
    same release (checked against its pinned hash when one is pinned)."""
    from .weights import install

    models_dir = _deepseg_dir(models, spec)
    print(f"Installing {spec.task} release {spec.tag} with sct_task_sciseg's verified installer "
          f"into {models_dir / spec.task / spec.tag}")
    installed = install(_task(spec), spec.tag, models_dir=models_dir, source=custom_url or None, force=force)
    folder = Path(models.folder(spec.key))
    if os.path.realpath(installed.path) != os.path.realpath(folder):
        raise InstallError(f"{installed.path}: installed outside SCT's model folder {folder}; "
                           "this version of sct_task_sciseg does not match SCT's layout")
    _check_sct_layout(folder, spec)
    _write_source_json(folder, spec, installed)
    print(f"Installed {spec.task} {spec.tag} (sha256 {installed.sha256}) for SCT in {folder}")
    return installed


def sct_model_ok(models: Any, spec: ModelSpec) -> bool:
    """SCT's ``is_up_to_date`` for this package's keys: the installed files match the install record (a
    damaged copy → False, so SCT reinstalls it through :func:`install_for_sct`). A copy installed by the
    ``sciseg`` command gets the ``source.json`` SCT needs."""
    from .weights import find_installed

    try:
        installed = find_installed(_task(spec), spec.tag, models_dir=_deepseg_dir(models, spec))
    except ModelError as exc:
        print(f"warning: {exc.args[0].split(';')[0]}", file=sys.stderr)
        return False
    if installed is None:
        return False
    folder = Path(models.folder(spec.key))
    try:
        _check_sct_layout(folder, spec)
    except InstallError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return False
    try:
        source = json.loads((folder / "source.json").read_text())
    except (OSError, ValueError):
        source = None
    if not source or source.get("model_name") != spec.key or source.get("sha256") != installed.sha256:
        try:
            _write_source_json(folder, spec, installed)
        except OSError as exc:
            print(f"warning: {folder}: cannot write source.json ({exc})", file=sys.stderr)
    return True


# --------------------------------------------------------------------------------------------------------
# The startup hook (.pth file in SCT's site-packages)
# --------------------------------------------------------------------------------------------------------
_PTH_CODE = (
    "try:\n"
    "    from sct_task_sciseg import sct_hook\n"
    "except ModuleNotFoundError as e:\n"
    "    sct_hook = None\n"
    "    if e.name != 'sct_task_sciseg':\n"
    "        sys.stderr.write('warning: sct_task_sciseg: startup hook unavailable (%s)\\n' % e)\n"
    "except Exception as e:\n"
    "    sct_hook = None\n"
    "    sys.stderr.write('warning: sct_task_sciseg: startup hook unavailable (%s)\\n' % e)\n"
    "if sct_hook is not None:\n"
    "    sct_hook.install(replace_builtin={replace})\n"
)


def pth_text(replace_builtin: bool = False) -> str:
    code = _PTH_CODE.replace("{replace}", "True" if replace_builtin else "False")
    return (
        "# sct_task_sciseg: registers its tasks with SCT's sct_deepseg when SCT loads its model list.\n"
        "# Written by `sciseg -register-sct`; remove with `sciseg -unregister-sct` (or delete this file).\n"
        f"import sys; exec({code!r})\n"
    )


def site_packages_dir() -> Path:
    """The site-packages folder of the running Python (where pip installed SCT and this package)."""
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


def hook_path(site_dir: Optional[Path] = None) -> Path:
    return Path(site_dir or site_packages_dir()) / PTH_NAME


def _require_sct() -> Path:
    root = sct_root()
    if root is None:
        raise SctNotFoundError(
            f"Spinal Cord Toolbox is not installed in this Python ({sys.executable}); run this with the "
            "Python of SCT's environment, e.g. `<SCT>/python/envs/venv_sct/bin/sciseg -register-sct` "
            "after `<SCT>/python/envs/venv_sct/bin/pip install sct_task_sciseg`")
    return root


def install_hook(replace_builtin: bool = False, site_dir: Optional[Path] = None,
                 require_sct: bool = True) -> List[str]:
    """Enable the startup hook in this Python's site-packages (idempotent). Returns what changed, one line
    per item, with the commands that now work."""
    root = _require_sct() if require_sct else sct_root()
    path = hook_path(site_dir)
    text = pth_text(replace_builtin)
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else None
    except OSError:
        old = None
    if old == text:
        lines = [f"unchanged: {path} (startup hook already enabled"
                 f"{', replacing SCT built-in tasks' if replace_builtin else ''})"]
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _tmp_name(path)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise InstallError(f"{path}: cannot write the startup hook ({exc.strerror or exc})") from exc
        action = "created" if old is None else "updated"
        lines = [f"{action}: {path} (startup hook: sct_deepseg registers {SCISEG.name}"
                 f"{' and replaces SCT built-in SCIseg tasks' if replace_builtin else ''})"]
    if root is not None:
        style = sct_cli_style(root)
        install_cmd, run_cmd = usage_hint(SCISEG.name, style)
        lines.append(f"SCT {sct_version(root) or '?'} at {root}: weights go to {sct_models_dir(root)}")
        lines.append(f"now: `{install_cmd}`, then `{run_cmd}`")
    return lines


def uninstall_hook(site_dir: Optional[Path] = None) -> List[str]:
    """Disable the startup hook (idempotent): removes the ``.pth`` file this package wrote. Installed weights
    are kept (they are shared with the ``sciseg`` command)."""
    path = hook_path(site_dir)
    if not path.exists():
        return [f"unchanged: {path} does not exist (startup hook not enabled)"]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InstallError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if "sct_task_sciseg" not in text:
        raise InstallError(f"{path}: not written by sct_task_sciseg; left in place")
    try:
        path.unlink()
    except OSError as exc:
        raise InstallError(f"{path}: cannot remove ({exc.strerror or exc})") from exc
    lines = [f"removed: {path} (sct_deepseg no longer knows this package's tasks)"]
    models_dir = sct_models_dir()
    if models_dir is not None and (models_dir / SCISEG.name).is_dir():
        lines.append(f"kept: {models_dir / SCISEG.name} (installed weights, shared with `sciseg`)")
    return lines


def hook_enabled(site_dir: Optional[Path] = None) -> bool:
    return hook_path(site_dir).is_file()


# --------------------------------------------------------------------------------------------------------
# sct_deepseg_sciseg: register, then run sct_deepseg's main() in this process
# --------------------------------------------------------------------------------------------------------
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
    if sct_root() is None:
        print(f"error: Spinal Cord Toolbox is not installed in this Python ({sys.executable}); "
              "install sct_task_sciseg into SCT's environment and run its sct_deepseg_sciseg", file=sys.stderr)
        return 2
    _launcher_environment()
    import importlib

    from .sct_hook import installed_finder

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
def _main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m sct_task_sciseg.sct register|unregister|status [--replace-builtin]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sct_task_sciseg.sct")
    parser.add_argument("action", choices=("register", "unregister", "status"))
    parser.add_argument("--replace-builtin", action="store_true",
                        help="also redirect SCT's own SCIseg task (7.x: lesion_sci_t2) to this package")
    args = parser.parse_args(argv)
    try:
        if args.action == "register":
            lines = install_hook(replace_builtin=args.replace_builtin)
        elif args.action == "unregister":
            lines = uninstall_hook()
        else:
            root = sct_root()
            lines = [f"SCT: {root or 'not installed in this Python'}"
                     + (f" (version {sct_version(root)}, {sct_cli_style(root)} syntax)" if root else ""),
                     f"startup hook: {'enabled' if hook_enabled() else 'not enabled'} ({hook_path()})"]
    except SciSegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
