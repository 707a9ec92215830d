"""A QC folder's entries: one JSON file per scan, written atomically, and the healthy controls of a BIDS dataset.

Layout of a QC folder::

    DIR/index.html                      the table (open it from disk: no server, no external resource)
    DIR/entries/<entry id>.json         one file per processed scan (written atomically)
    DIR/pictures/<entry id>/*.png       the pictures of that scan (see sct_task_sciseg.qc)
    DIR/.index.lock                     file lock serialising the re-rendering of index.html

Parallel runs can share ``DIR``: each writes only its own entry (:func:`write_entry`: temporary file, then
``os.replace``), then re-renders ``index.html`` from *all* entries under a :class:`filelock.FileLock`
(:func:`sct_task_sciseg.qc.report.add_qc_entry`). Whoever renders last has seen every entry written before it took
the lock, so no row is ever lost and no file is ever half written.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import List, Optional, Set

from ..io.atomic import atomic_write
from .index_rows import entry_problem

ENTRIES = "entries"
INDEX = "index.html"
LOCK = ".index.lock"
LOCK_TIMEOUT_S = 300


CONTROL_COLUMNS = ("group", "pathology", "diagnosis", "condition", "status", "cohort", "disease", "category",
                   "population", "subject_type", "participant_type", "clinical_group", "health_status", "type")
CONTROL_VALUES = {"hc", "control", "controls", "healthy", "healthy control", "healthy controls", "healthy_control",
                  "healthy-control", "healthycontrol", "healthy volunteer", "healthy volunteers", "healthy subject",
                  "ctrl", "nc", "normal control", "normal", "hv", "volunteer", "td"}


# ------------------------------------------------------------------------------------------ participants
def normalise_subject(subject: str) -> str:
    """``'sub-01'`` and ``'01'`` → ``'01'``."""
    s = str(subject).strip()
    return s[4:] if s.startswith("sub-") else s


def read_participants_controls(bids_root) -> Set[str]:
    """Participant ids (as written, e.g. ``sub-01``) that ``participants.tsv`` lists as healthy controls.

    The group is read from the first column named like ``group``/``pathology``/``diagnosis``/… (case-insensitive)
    whose values include a control label (HC, control, healthy, healthy control, …). No file, no such column:
    an empty set.
    """
    path = Path(bids_root) / "participants.tsv"
    if not path.is_file():
        return set()
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()
    if not rows:
        return set()
    columns = [c for c in rows[0].keys() if c is not None]
    id_col = next((c for c in columns if c.strip().lower() == "participant_id"), columns[0] if columns else None)
    lowered = {c.strip().lower(): c for c in columns}
    candidates = [lowered[n] for n in CONTROL_COLUMNS if n in lowered]
    candidates += [c for c in columns if c not in candidates and c != id_col
                   and re.search(r"group|patholog|diagnos|cohort", c, re.I)]
    for col in candidates:
        ids = {str(r.get(id_col) or "").strip() for r in rows
               if str(r.get(col) or "").strip().lower() in CONTROL_VALUES}
        ids.discard("")
        if ids:
            return ids
    return set()


# ----------------------------------------------------------------------------------------------- entries
def entry_id(dataset: Optional[str], subject: Optional[str], session: Optional[str], stem: str, task: str,
             model_tag: str) -> str:
    """A file-name-safe id, unique per (dataset, subject, session, file, task, model tag)."""
    parts = [dataset, subject, session, stem, task, model_tag]
    readable = "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", str(p)).strip("-.") for p in parts[:4] if p)
    digest = hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:10]
    return f"{readable[:80] or 'scan'}_{digest}"


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)


def load_entries(qc_dir) -> List[dict]:
    """Every usable entry of ``qc_dir``, in a stable order; an unreadable or malformed file is reported (one
    warning line) and left out, so it never blocks the report or a segmentation."""
    entries = []
    for path in sorted((Path(qc_dir) / ENTRIES).glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            problem = entry_problem(entry)
        except (OSError, ValueError) as exc:
            problem = f"unreadable ({exc})"
        if problem is None:
            entries.append(entry)
        else:
            print(f"sciseg: warning: {path}: malformed QC entry, left out of the report: {problem}", file=sys.stderr)
    entries.sort(key=lambda e: tuple(str(e.get(k) or "") for k in ("dataset", "subject", "session", "file",
                                                                        "task", "model_tag")))
    return entries


def write_entry(qc_dir, entry: dict) -> Path:
    """Write ``entry`` as ``DIR/entries/<id>.json`` (atomically; an existing entry with that id is replaced).
    Returns the entry's path."""
    qc_dir = Path(qc_dir)
    if not entry.get("id"):
        raise ValueError("a QC entry needs an 'id'")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", entry["id"]) or entry["id"].startswith("."):
        raise ValueError(f"QC entry id {entry['id']!r} is not a safe file name")
    path = qc_dir / ENTRIES / f"{entry['id']}.json"
    write_text_atomic(path, json.dumps(entry, indent=1, sort_keys=True, default=str))
    return path
