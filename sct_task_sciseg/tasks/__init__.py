"""Task definitions: pure data (no torch, no nnU-Net, no numpy), discovered through entry points.

A task says what a model is (name, aliases, citation), where its versioned weights live (releases, with
optional pinned sha256/size), how its label map splits into output masks (:class:`LabelScheme`), and the
predictor defaults. Other packages add tasks by exposing a :class:`Task` in the ``sct_task_sciseg.tasks``
entry-point group.
"""
from .registry import ENTRY_POINT_GROUP, all_tasks, get_task, resolve_task, split_task_spec
from .schema import DATA_DIR, LabelScheme, Output, PredictorDefaults, Release, Task
from .sciseg import SCISEG

__all__ = ["ENTRY_POINT_GROUP", "DATA_DIR", "SCISEG", "LabelScheme", "Output", "PredictorDefaults", "Release",
           "Task", "all_tasks", "get_task", "resolve_task", "split_task_spec"]
