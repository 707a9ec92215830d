"""Startup hook that registers this package's tasks with Spinal Cord Toolbox (SCT).

SCT has no plugin mechanism, and every ``sct_*`` command re-runs its script in a child Python process, so the
registration has to happen inside that child. ``sciseg -register-sct`` writes a one-line ``.pth`` file into
the site-packages of SCT's environment; Python runs it at startup and it calls :func:`install`, which only
puts a small finder at the front of ``sys.meta_path``. Nothing else happens until a process imports
``spinalcordtoolbox.deepseg.models``: right after that module has run, :func:`sct_task_sciseg.sct.register`
adds the tasks to its ``MODELS``/``TASKS`` dicts. Any failure prints one warning and SCT goes on unchanged.

This module is imported at the start of every Python process of SCT's environment: it imports nothing beyond
``sys`` and, for its switches, :mod:`sct_task_sciseg.environment` (``os`` only; no torch, no nnU-Net, no SCT).
``SCISEG_SCT_HOOK=0`` turns the hook off for one run.
"""
import sys

TARGET = "spinalcordtoolbox.deepseg.models"
ENV_DISABLE = "SCISEG_SCT_HOOK"
ENV_REPLACE = "SCISEG_SCT_REPLACE_BUILTIN"


def flag(name, default=False):
    """An on/off variable of :mod:`sct_task_sciseg.environment` (os-only); unset or not a switch → its default there,
    so that SCT always starts (``default``: kept for callers)."""
    from .environment import lenient
    return lenient(name)


def _warn(message):
    try:
        sys.stderr.write(f"warning: sct_task_sciseg: {message}; SCT continues without it\n")
    except Exception:  # stderr closed or unusable: stay silent rather than break SCT
        pass


class _NotifyingLoader:
    """Wraps the real loader of the target module and calls ``callback(module)`` once it has executed."""

    def __init__(self, inner, callback):
        self._inner = inner
        self._callback = callback

    def create_module(self, spec):
        create = getattr(self._inner, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        self._inner.exec_module(module)
        self._callback(module)

    def __getattr__(self, name):  # get_source, get_code, get_filename, is_package, ...
        return getattr(self._inner, name)


class SctTaskFinder:
    """Meta-path finder that reacts to one module name and hands every other import on untouched."""

    def __init__(self, replace_builtin=False):
        self.replace_builtin = replace_builtin
        self._busy = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET or self._busy:
            return None
        self._busy = True
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or isinstance(finder, SctTaskFinder) or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                        return None
                    spec.loader = _NotifyingLoader(spec.loader, self._on_import)
                    return spec
            return None
        except Exception as exc:  # never stand in the way of SCT's own import
            _warn(f"import hook failed ({type(exc).__name__}: {exc})")
            return None
        finally:
            self._busy = False

    def invalidate_caches(self):
        pass

    def _on_import(self, module):
        try:
            from sct_task_sciseg import sct
            sct.register(module, replace_builtin=self.replace_builtin or flag(ENV_REPLACE))
        except Exception as exc:
            _warn(f"could not register its tasks with SCT ({type(exc).__name__}: {exc})")


def installed_finder():
    """The finder already in ``sys.meta_path``, if any."""
    return next((f for f in sys.meta_path if isinstance(f, SctTaskFinder)), None)


def install(replace_builtin=False):
    """Put the finder in ``sys.meta_path`` (once); called by the ``.pth`` line. Never raises."""
    try:
        if not flag(ENV_DISABLE, default=True):
            return None
        finder = installed_finder()
        if finder is None:
            finder = SctTaskFinder(replace_builtin)
            sys.meta_path.insert(0, finder)
        else:
            finder.replace_builtin = finder.replace_builtin or replace_builtin
        module = sys.modules.get(TARGET)
        if module is not None:  # installed late (the module is already loaded): register now
            finder._on_import(module)
        return finder
    except Exception as exc:
        _warn(f"startup hook failed ({type(exc).__name__}: {exc})")
        return None


def uninstall():
    """Remove the finder from ``sys.meta_path`` of this process (tasks already registered stay)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, SctTaskFinder)]
