"""Everything a segmentation run can check before torch, nnU-Net or the weights are loaded.

Refused outright (nothing runs): two inputs writing the same output, an output that is an input, outputs or
QC pictures inside the models folder, an output or QC folder that cannot be created or written (a missing
folder of ``-o``, ``-o DIR/`` or ``-o DIR/base.nii.gz``, or of ``-qc`` is created). Refused per
input (one line each, counted as failed, the others run): a missing, unreadable or malformed file, a header
whose data would not fit in memory or in the model-space cap, a folder of the input tree that cannot be read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from ..batch.inputs import Item, bids_skipped, item_plan, scan
from ..batch.runner import Job
from ..errors import OutputError, SciSegError
from ..io.atomic import check_writable
from ..io.naming import collision, is_inside, is_output_folder
from ..io.nifti import read_header
from .parser import chosen_extra_images


class UsageError(SciSegError):
    """The command line asks for something that must not run (exit status 2)."""


@dataclass
class Plan:
    """The inputs that passed, and the refused ones (already reported) as failed jobs, in input order."""

    items: List[Item] = field(default_factory=list)
    failed: List[Job] = field(default_factory=list)
    order: List[Item] = field(default_factory=list)  # every input and unreadable folder, as found

    def merge(self, jobs: List[Job]) -> List[Job]:
        """All jobs in the order the inputs were found (refused ones where they were)."""
        rank = {id(it): n for n, it in enumerate(self.order)}
        return sorted(self.failed + list(jobs), key=lambda j: rank.get(id(j.item), len(rank)))


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def _folder_problem(folder: Path, created: bool) -> Optional[str]:
    """Why outputs cannot go to ``folder`` (``created``: made when missing, as under ``-o DIR/``), or None."""
    try:
        if folder.exists() or not created:
            check_writable(folder)
            return None
        base = _nearest_existing(folder)
        if not base.is_dir():
            return f"{folder}: cannot create the output folder ({base} is not a folder)"
        if not os.access(base, os.W_OK | os.X_OK):
            return f"{folder}: cannot create the output folder ({base} is not writable)"
    except SciSegError as exc:
        return str(exc)
    return None


def _make_folder(folder: Path, what: str) -> None:
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise OutputError(f"{folder}: cannot create the {what} ({base} is not a folder)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the {what} ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: the {what} is not writable")


def _check_qc(args, models_dir: Path) -> None:
    if not args.qc:
        return
    qc = Path(args.qc)
    if is_inside(qc, models_dir):
        raise UsageError(f"-qc {qc}: is inside the models folder {models_dir}; choose another folder")
    _make_folder(qc, "QC folder")


def _scan_outputs(args, item: Item, task):
    return item_plan(item, args.o, task, chosen_extra_images(args),
                     analyze=bool(getattr(args, "analyze", False)))


def _check_outputs(args, items: List[Item], task, models_dir: Path) -> None:
    several = len(items) > 1 or any(Path(i).is_dir() for i in args.i)
    if args.o and several and not is_output_folder(args.o):
        raise UsageError(f"-o {args.o}: several inputs need an output folder (end it with /)")
    plans = [(it.path, _scan_outputs(args, it, task).files()) for it in items]
    problem = collision(plans)
    if problem:
        raise UsageError(f"{problem}; nothing was run (choose another -o)")
    for inp, outs in plans:
        if any(is_inside(o, models_dir) for o in outs):
            raise UsageError(f"{inp}: its outputs would go inside the models folder {models_dir}; use -o")
    if args.o:  # -o DIR/ or -o DIR/base.nii.gz: a missing DIR is created, as nnU-Net's -o and SCT's -o do
        _make_folder(Path(args.o) if is_output_folder(args.o) else Path(args.o).parent, "output folder")


def plan_run(args, segmenter, models_dir: Path, error: Callable[[str], None]) -> Plan:
    """Check every path and header of a segmentation run; raises :class:`UsageError` or
    :class:`~sct_task_sciseg.errors.OutputError` when nothing should run."""
    items, unreadable = scan(args.i, segmenter.task)
    plan = Plan()
    for folder in unreadable:
        it = Item(folder.path, None)
        plan.order.append(it)
        plan.failed.append(Job(it, status="failed", reason=folder.message()))
        error(folder.message())
    if not items and not unreadable:
        raise SciSegError(f"{' '.join(args.i)}: no NIfTI input found")
    for folder in args.i:
        skipped = bids_skipped(Path(folder), segmenter.task) if Path(folder).is_dir() else 0
        if skipped and getattr(args, "v", 1):
            kinds = "/".join(suffix.lstrip("_") for suffix in segmenter.task.bids_suffixes)
            print(f"{folder}: {skipped} NIfTI file(s) in anat/ are not {kinds} and were skipped (this task "
                  f"segments {kinds}; give a file with -i to segment it anyway)")
    _check_outputs(args, items, segmenter.task, models_dir)
    _check_qc(args, models_dir)
    for it in items:
        plan.order.append(it)
        folder = _scan_outputs(args, it, segmenter.task).folder
        problem = _folder_problem(folder, created=bool(args.o))
        try:
            if problem is None:
                header = read_header(it.path)
                segmenter.check_size(header.image, str(it.path), install=False)
        except SciSegError as exc:
            problem = str(exc)
        if problem is None:
            plan.items.append(it)
        else:
            plan.failed.append(Job(it, status="failed", reason=problem))
            error(problem)
    return plan
