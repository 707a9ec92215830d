"""What a batch segments: NIfTI files, folders of them, BIDS datasets; and where each one's outputs go."""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from ..io.naming import is_hidden, is_nifti, is_output_folder, output_base, strip_nifti_suffix
from ..io.outputs import ScanOutputs, is_package_output
from ..tasks import all_tasks

BIDS_ANAT = ("sub-*/anat/*.nii*", "sub-*/ses-*/anat/*.nii*")


@dataclass
class Item:
    """One input and where it came from (the folder it was found in, for mirroring under an output folder)."""

    path: Path
    root: Optional[Path] = None


@dataclass
class Unreadable:
    """A folder of an input tree that could not be listed, so whatever it holds is missing from the batch."""

    path: Path
    reason: str

    def message(self) -> str:
        return f"{self.path}: cannot read this folder ({self.reason}); its scans are skipped"


def natural_key(path: Path) -> tuple:
    """Sort key putting ``scan2`` before ``scan10`` (digit runs compare as numbers), path part by part."""
    return tuple(tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", part) if t)
                 for part in Path(path).parts)


def is_bids(folder: Path) -> bool:
    return any(p.is_dir() for p in folder.glob("sub-*"))


def _entries(folder: Path, problems: List[Unreadable]) -> List[Path]:
    """The sorted entries of ``folder``, hidden ones left out; an unreadable folder is recorded."""
    try:
        with os.scandir(folder) as it:
            return sorted((Path(e.path) for e in it if not is_hidden(e.name)), key=natural_key)
    except OSError as exc:
        problems.append(Unreadable(folder, exc.strerror or type(exc).__name__))
        return []


def _folder(path: Path, problems: List[Unreadable]) -> bool:
    """True for a folder; a name that cannot even be looked up (dangling link, link loop) is recorded."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as exc:
        problems.append(Unreadable(path, exc.strerror or type(exc).__name__))
        return False


def _is_output(tasks) -> Callable[[Path], bool]:
    """Whether a found file is one this package writes (for the run's task and every installed task)."""
    known = list({id(t): t for t in [*tasks, *all_tasks().values()]}.values())
    return lambda path: is_package_output(path, known)


def _bids_scans(root: Path, problems: List[Unreadable], suffixes: Tuple[str, ...]) -> List[Path]:
    """``sub-*/anat/*<suffix>.nii*`` and ``sub-*/ses-*/anat/*<suffix>.nii*`` for each of ``suffixes`` (a task's
    :attr:`~sct_task_sciseg.tasks.Task.bids_suffixes`), reporting every folder that cannot be read."""
    found = []
    for sub in _entries(root, problems):
        if not sub.name.startswith("sub-") or sub.is_file() or not _folder(sub, problems):
            continue
        entries = _entries(sub, problems)
        sessions = [e for e in entries if e.name.startswith("ses-") and not e.is_file() and _folder(e, problems)]
        anats = [e for folder in [entries] + [_entries(ses, problems) for ses in sessions]
                 for e in folder if e.name == "anat"]
        for anat in anats:
            if _folder(anat, problems):
                found += [q for q in _entries(anat, problems) if is_nifti(q)
                          and strip_nifti_suffix(q.name).endswith(suffixes)]
    return sorted(set(found), key=natural_key)


def bids_skipped(folder: Path, task) -> int:
    """NIfTI files in the ``anat`` folders of a BIDS dataset that ``task`` does not take (none of its
    :attr:`~sct_task_sciseg.tasks.Task.bids_suffixes`; left out of the batch)."""
    if not is_bids(folder):
        return 0
    found = [q for pattern in BIDS_ANAT for q in folder.glob(pattern)]
    return sum(1 for q in set(found) if is_nifti(q) and not is_hidden(q.name)
               and not strip_nifti_suffix(q.name).endswith(task.bids_suffixes))


def _found_in(folder: Path, problems: List[Unreadable], is_output: Callable[[Path], bool],
              suffixes: Tuple[str, ...]) -> List[Path]:
    if is_bids(folder):
        return [q for q in _bids_scans(folder, problems, suffixes) if not is_output(q)]
    return [q for q in _entries(folder, problems) if q.is_file() and is_nifti(q) and not is_output(q)
            and not strip_nifti_suffix(q.name).endswith("_seg")]


def scan(items: Sequence[str], task) -> Tuple[List[Item], List[Unreadable]]:
    """(inputs, unreadable folders): files as given; a folder → its NIfTI files, leaving out hidden ones (such
    as temporary files) and every file this package writes (:class:`~sct_task_sciseg.io.outputs.ScanOutputs`
    of ``task`` and the installed tasks: masks, probability maps, lesion-id images); a BIDS dataset → its scans
    with one of the task's :attr:`~sct_task_sciseg.tasks.Task.bids_suffixes` (SCIseg: ``_T2w``); duplicates
    removed."""
    out: List[Item] = []
    problems: List[Unreadable] = []
    seen = set()
    is_output = _is_output([task])
    for entry in items:
        p = Path(entry)
        new = [Item(q, p) for q in _found_in(p, problems, is_output, task.bids_suffixes)] if p.is_dir() else [Item(p, None)]
        for it in new:
            key = os.path.abspath(it.path)
            if key not in seen:
                seen.add(key)
                out.append(it)
    return out, problems


def expand(items: Sequence[str], task) -> List[Item]:
    """The inputs of :func:`scan` (unreadable folders left out silently: use :func:`scan` to report them)."""
    return scan(items, task)[0]


def output_base_for(item: Item, output: Optional[str]) -> Path:
    """Base path of an input's outputs: beside it, ``-o X.nii.gz``, or under ``-o DIR/`` mirroring its folder."""
    if is_output_folder(output) and item.root is not None:
        parent, root = item.path.parent.resolve(), item.root.resolve()
        rel = parent.relative_to(root) if parent.is_relative_to(root) else Path()
        return output_base(item.path, str(Path(output) / rel) + os.sep)
    return output_base(item.path, output)


def bids_derivative(item: Item, output: Optional[str]) -> bool:
    """True for a scan of a BIDS dataset written into an output folder (a derivatives folder): its outputs get
    BIDS-derivatives names. A file given on its own keeps SCT's names (``<in>_sc_seg.nii.gz``)."""
    return is_output_folder(output) and item.root is not None and is_bids(item.root)


def item_plan(item: Item, output: Optional[str], task, extra_images: Sequence[str] = (),
              analyze: bool = False) -> ScanOutputs:
    """Every file one input writes (:func:`output_base_for`; BIDS names for :func:`bids_derivative`)."""
    return ScanOutputs.of(output_base_for(item, output), task, extra_images, analyze=analyze,
                          bids=bids_derivative(item, output))
