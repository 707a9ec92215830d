"""Errors shown to users as one line: what failed, on which file/URL, and what to do.

Core errors carry an optional :class:`Hint`: a machine-readable "what to do" (reinstall a release, install
from a local file, ...). ``str(exc)`` words it for Python users; each adapter (the CLI, the SCT adapter) words
it for its own users (see :mod:`sct_task_sciseg.cli.hints`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional


@dataclass(frozen=True)
class Hint:
    """What the user can do about an error: ``action`` names it, ``params`` fill in the details.

    Actions: ``reinstall`` (task, tag), ``offline-install`` (task, tag, asset), ``models-dir``, ``mirror``,
    ``runtime`` (install torch and nnU-Net), ``repair-nnunet`` (command).
    """

    action: str
    params: Dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The hint for Python users."""
        p = self.params
        if self.action == "reinstall":
            return f"reinstall it: install(get_task({p.get('task')!r}), {p.get('tag')!r}, force=True)"
        if self.action == "offline-install":
            return (f"check the network, set SCISEG_RELEASE_URL to a mirror, or install from a local copy: "
                    f"install(get_task({p.get('task')!r}), {p.get('tag')!r}, "
                    f"source='/path/to/{p.get('asset') or 'the release zip'}')")
        if self.action == "models-dir":
            return "set SCISEG_MODELS_DIR or pass models_dir to a writable folder"
        if self.action == "mirror":
            return "check the network, or set SCISEG_RELEASE_URL to a mirror"
        if self.action == "runtime":
            return ("outside SCT, install them with pip install torch \"sct_task_sciseg[standalone]\"; inside SCT, "
                    "use SCT's own Python, which has them")
        if self.action == "repair-nnunet":
            return f"repair it with: {p.get('command')}"
        return self.action


class SciSegError(Exception):
    """Base class: ``str(exc)`` is the one line shown to users (the message, then the hint)."""

    def __init__(self, message: str, hint: Optional[Hint] = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint.text()}" if self.hint else self.message


class InstallError(SciSegError):
    """A model could not be installed; the previously installed model (if any) is untouched."""


class ModelError(SciSegError):
    """An installed model folder is missing, incomplete or was modified."""


class InputError(SciSegError):
    """An input image cannot be segmented (not NIfTI, wrong dimensions, bad values, ...)."""


class OutputError(SciSegError):
    """An output cannot be written (folder missing or not writable)."""


class ConfigError(SciSegError, ValueError):
    """An ``SCISEG_*`` environment variable holds a value of the wrong type (:mod:`sct_task_sciseg.environment`)."""


class SettingError(SciSegError, ValueError):
    """An option is out of range or does not fit this machine (threads, threshold, precision, sizes, ...)."""


class UnknownTaskError(SciSegError, KeyError):
    """No task (or no release of a task) has this name."""
