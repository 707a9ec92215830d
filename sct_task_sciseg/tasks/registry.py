"""Every known task: this package's own, plus those other packages expose in the entry-point group."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..errors import UnknownTaskError
from ..log import logger
from .schema import Task
from .sciseg import SCISEG

ENTRY_POINT_GROUP = "sct_task_sciseg.tasks"


def _entry_points() -> List:
    from importlib.metadata import entry_points

    eps = entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, []))  # Python 3.9


def all_tasks() -> Dict[str, Task]:
    """Every registered task by its main name (this package's SCIseg is always there)."""
    tasks: Dict[str, Task] = {SCISEG.name: SCISEG}
    for ep in _entry_points():
        try:
            task = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break this one
            logger.warning(f"task plugin {ep.name!r} failed to load: {exc}")
            continue
        if isinstance(task, Task):
            tasks.setdefault(task.name, task)
    return tasks


def split_task_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``"name@tag"`` → ``("name", "tag")``; ``"name"`` → ``("name", None)``."""
    name, _, tag = spec.partition("@")
    return name, (tag or None)


def get_task(name: Optional[str] = None) -> Task:
    """The task called ``name`` (main name or alias; a ``@tag`` suffix is ignored here, see
    :func:`resolve_task`); SCIseg when ``name`` is None."""
    if name is None:
        return SCISEG
    name = split_task_spec(name)[0]
    tasks = all_tasks()
    for task in tasks.values():
        if name in task.names:
            return task
    known = ", ".join(sorted(n for t in tasks.values() for n in t.names))
    raise UnknownTaskError(f"unknown task {name!r} (known: {known})")


def resolve_task(spec, tag: Optional[str] = None) -> Tuple[Task, Optional[str]]:
    """(task, release tag) from a :class:`Task`, a name, or ``"name@tag"``; an explicit ``tag`` wins."""
    if isinstance(spec, Task):
        return spec, tag
    name, spec_tag = split_task_spec(spec) if spec else (None, None)
    return get_task(name), tag or spec_tag
