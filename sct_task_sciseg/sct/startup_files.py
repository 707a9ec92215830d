"""The startup hook: a ``.pth`` file in SCT's site-packages that registers this package's tasks whenever an SCT
process loads its model list (see :mod:`sct_task_sciseg.sct_hook`). Where that folder cannot be written, the same
hook comes from ``PYTHONPATH`` (the package's ``sct_startup`` folder, a ``sitecustomize``) and nothing is written.

The ``.pth`` removes itself, silently, at the first Python start after ``pip uninstall sct_task_sciseg``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

from .. import sct_hook
from ..errors import InstallError, SciSegError
from ..io.atomic import atomic_write
from ..tasks import all_tasks, get_task
from ..weights import locations
from .locate import sct_cli_style, sct_version, usage_hint

PTH_NAME = "sct_task_sciseg_sct_hook.pth"


class SctNotFoundError(SciSegError):
    """SCT is not installed in the running Python environment."""


_PTH_CODE = (
    "try:\n"
    "    from sct_task_sciseg import sct_hook\n"
    "except ImportError as e:\n"
    "    sct_hook = None\n"
    "    if (e.name or '').split('.')[0] == 'sct_task_sciseg':\n"
    "        # the package is gone (pip uninstall): this file goes too, silently\n"
    "        try:\n"
    "            __import__('os').remove({path})\n"
    "        except Exception:\n"
    "            pass\n"
    "    else:\n"
    "        sys.stderr.write('warning: sct_task_sciseg: startup hook unavailable (%s)\\n' % e)\n"
    "except Exception as e:\n"
    "    sct_hook = None\n"
    "    sys.stderr.write('warning: sct_task_sciseg: startup hook unavailable (%s)\\n' % e)\n"
    "if sct_hook is not None:\n"
    "    sct_hook.install(replace_builtin={replace})\n"
)


def pth_text(replace_builtin: bool = False, path: Optional[Path] = None) -> str:
    """The ``.pth`` line; written at ``path``, it removes that file once the package is gone."""
    code = (_PTH_CODE.replace("{replace}", "True" if replace_builtin else "False")
            .replace("{path}", repr(str(path)) if path is not None else "''"))
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


def startup_dir() -> Path:
    """The folder to put on ``PYTHONPATH`` where SCT's site-packages cannot be written (a ``sitecustomize``)."""
    return Path(sct_hook.__file__).resolve().parent / "sct_startup"


def env_route_lines(replace_builtin: bool = False) -> List[str]:
    """How to enable the hook without writing anything: the ``PYTHONPATH`` (and replace) settings."""
    env = f"export PYTHONPATH={startup_dir()}${{PYTHONPATH:+:$PYTHONPATH}}"
    if replace_builtin:
        env += f" {sct_hook.ENV_REPLACE}=1"
    return [f"to enable it, set in the environment that runs SCT (shell profile, Apptainer/Docker env): {env}"]


def _require_sct() -> Path:
    root = locations.sct_root()
    if root is None:
        raise SctNotFoundError(
            f"Spinal Cord Toolbox is not installed in this Python ({sys.executable}); run this with the "
            "Python of SCT's environment, e.g. `<SCT>/python/envs/venv_sct/bin/sciseg -register-sct` "
            "after `<SCT>/python/envs/venv_sct/bin/pip install sct_task_sciseg`")
    return root


def install_hook(replace_builtin: bool = False, site_dir: Optional[Path] = None,
                 require_sct: bool = True, env_route: bool = False) -> List[str]:
    """Enable the startup hook in this Python's site-packages (idempotent). Returns what changed, one line
    per item, with the commands that now work. Where site-packages cannot be written (or ``env_route``),
    nothing is written: the lines say which ``PYTHONPATH`` enables the hook instead."""
    root = _require_sct() if require_sct else locations.sct_root()
    task = get_task(None)  # the default task, named in the commands printed below
    registered = ", ".join([task.name] + [n for n in all_tasks() if n != task.name])  # what the hook registers
    path = hook_path(site_dir)
    text = pth_text(replace_builtin, path)
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else None
    except OSError:
        old = None
    if env_route or (old != text and not locations.is_writable(path.parent)):
        why = "as asked" if env_route else "read-only"
        lines = [f"not written: {path} ({why}; SCT's environment is left as it is)"] + env_route_lines(replace_builtin)
    elif old == text:
        lines = [f"unchanged: {path} (startup hook already enabled"
                 f"{', replacing SCT built-in tasks' if replace_builtin else ''})"]
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, text)
        except OSError as exc:
            raise InstallError(f"{path}: cannot write the startup hook ({exc.strerror or exc})") from exc
        action = "created" if old is None else "updated"
        lines = [f"{action}: {path} (startup hook: sct_deepseg registers {registered}"
                 f"{' and replaces SCT built-in tasks for the same model' if replace_builtin else ''})"]
    if root is not None:
        style = sct_cli_style(root)
        install_cmd, run_cmd = usage_hint(task.name, style)
        sct_models = locations.sct_models_dir(root)
        weights = (f"{sct_models}" if locations.usable_sct_folder(sct_models) else
                   f"{locations.user_models_dir()} (SCT's {sct_models} is read-only)")
        lines.append(f"SCT {sct_version(root) or '?'} at {root}: weights go to {weights}")
        lines.append(f"now: `{install_cmd}`, then `{run_cmd}`")
    return lines


def uninstall_hook(site_dir: Optional[Path] = None) -> List[str]:
    """Disable the startup hook (idempotent): removes the ``.pth`` file this package wrote. Installed weights
    are kept (they are shared with the ``sciseg`` command)."""
    path = hook_path(site_dir)
    if not path.exists():
        return [f"unchanged: {path} does not exist (startup hook not enabled here; where it was enabled through "
                f"PYTHONPATH, remove {startup_dir()} from it)"]
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
    models_dir = locations.sct_models_dir()
    for task in all_tasks().values():
        if models_dir is not None and (models_dir / task.name).is_dir():
            lines.append(f"kept: {models_dir / task.name} (installed weights, shared with `sciseg`)")
    return lines


def hook_enabled(site_dir: Optional[Path] = None) -> bool:
    return hook_path(site_dir).is_file()
