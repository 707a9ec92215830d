"""Errors shown to users as one line: what failed, on which file/URL, and what to do."""


class SciSegError(Exception):
    """Base class: ``str(exc)`` is the one line the CLI prints."""


class InstallError(SciSegError):
    """A model could not be installed; the previously installed model (if any) is untouched."""


class ModelError(SciSegError):
    """An installed model folder is missing, incomplete or was modified."""


class InputError(SciSegError):
    """An input image cannot be segmented (not NIfTI, wrong dimensions, bad values, ...)."""


class OutputError(SciSegError):
    """An output cannot be written (folder missing or not writable)."""
