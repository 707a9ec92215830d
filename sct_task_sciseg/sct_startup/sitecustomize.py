"""sct_task_sciseg's startup hook for environments whose site-packages cannot be written (Apptainer images,
shared read-only SCT installs): put this folder first on ``PYTHONPATH`` and every Python of SCT's environment
registers this package's tasks when SCT loads its model list, exactly as the ``.pth`` hook does
(:mod:`sct_task_sciseg.sct_hook`). Nothing is written anywhere. ``SCISEG_SCT_REPLACE_BUILTIN=1`` also redirects
SCT's own task for the model. The ``sitecustomize`` this file shadows (one later on ``sys.path``) still runs.
Uninstalling the package removes this folder, so a stale ``PYTHONPATH`` entry does nothing.
"""
import os
import sys


def _run_shadowed_sitecustomize():
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


try:
    from sct_task_sciseg import sct_hook
except ImportError:  # the package is gone: nothing to register
    sct_hook = None
if sct_hook is not None:
    sct_hook.install()
try:
    _run_shadowed_sitecustomize()
except Exception as exc:  # noqa: BLE001 - as Python itself does for a failing sitecustomize
    sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}\n")
