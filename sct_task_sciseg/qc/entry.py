"""Everything ``-qc DIR`` does for one segmented scan: pictures, numbers, flags and its report entry."""
from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import nibabel as nib

from .. import __version__
from ..io.bids import dataset_name
from ..io.naming import strip_nifti_suffix
from ..tasks import get_task
from . import folder, report
from .geometry import Roles
from .pictures import render_qc
from .plausibility import scan_checks
from .stats import lesion_stats


_BIDS_SUB = re.compile(r"(?:^|[_/])(sub-[A-Za-z0-9]+)")
_BIDS_SES = re.compile(r"(?:^|[_/])(ses-[A-Za-z0-9]+)")


def _find_bids_root(path: Path) -> Optional[Path]:
    for parent in list(Path(path).resolve().parents)[:6]:
        if (parent / "participants.tsv").is_file() or (parent / "dataset_description.json").is_file():
            return parent
    return None


@dataclass
class ScanContext:
    """Where a scan sits in its dataset (BIDS entities from its path, unless given)."""

    dataset: Optional[str] = None
    subject: Optional[str] = None
    session: Optional[str] = None
    bids_root: Optional[Path] = None

    @classmethod
    def of(cls, image_path: Path, dataset=None, subject=None, session=None, bids_root=None) -> "ScanContext":
        text = Path(image_path).as_posix()
        if subject is None:
            m = _BIDS_SUB.search(text)
            subject = m.group(1) if m else None
        if session is None:
            m = _BIDS_SES.search(text)
            session = m.group(1) if m else None
        if bids_root is None and subject is not None:
            bids_root = _find_bids_root(image_path)
        if dataset is None and bids_root is not None:  # the dataset's Name, else its folder's name
            dataset = dataset_name(Path(bids_root)) or Path(bids_root).resolve().name
        return cls(dataset, subject, session, bids_root)

    def is_control(self) -> Optional[bool]:
        """Whether ``participants.tsv`` lists the subject as a healthy control (None: not known)."""
        if self.bids_root is None:
            return None
        controls = {folder.normalise_subject(c) for c in folder.read_participants_controls(Path(self.bids_root))}
        if controls and self.subject is not None:
            return folder.normalise_subject(self.subject) in controls
        return None


def model_note(task_name: str, model_tag: str, sha256: Optional[str] = None) -> dict:
    """What a reviewer should know about the model: its release description, and whether it is a demo model.

    A demo model is the task's embedded release (shipped for the offline demo and tests), or any model whose
    archive hash is that of an embedded release (the same weights installed under another tag)."""
    try:
        task = get_task(task_name)
    except KeyError:
        return {"model_description": None, "model_demo": False}
    release = next((r for r in task.releases if r.tag == model_tag), None)
    embedded_hashes = {r.sha256 for r in task.releases if r.embedded and r.sha256}
    demo = bool(release is not None and release.embedded) or (sha256 is not None and sha256 in embedded_hashes)
    return {"model_description": release.description if release is not None else None, "model_demo": demo}


def command_line(argv: Optional[Sequence[str]]) -> Optional[str]:
    """``argv`` as one shell-quoted line, the program shown by its name (``sciseg -i a.nii.gz -qc qc``)."""
    if not argv:
        return None
    program = Path(str(argv[0])).name
    program = "python -m sct_task_sciseg" if program == "__main__.py" else program
    return " ".join([program, *(shlex.quote(str(a)) for a in argv[1:])])


def _run_record(command: Optional[Sequence[str]], generated_by: Optional[Mapping]) -> dict:
    gen = dict(generated_by or {})
    return {"command": command_line(command), "cwd": os.getcwd() if command else None,
            "parameters": gen.get("Parameters"), "model_sha256": gen.get("ModelSHA256")}


def write_qc(qc_dir, image_path: Path, image: nib.spatialimages.SpatialImage, masks: Mapping[str, object], *,
             model_tag: str, task_name: str, dataset: Optional[str] = None, subject: Optional[str] = None,
             session: Optional[str] = None, bids_root: Optional[Path] = None,
             roles: Roles, analysis=None, command: Optional[Sequence[str]] = None,
             generated_by: Optional[Mapping] = None, checks: Optional[Mapping] = None) -> Path:
    """Everything ``-qc DIR`` does for one segmented scan; returns the path of its entry JSON.

    * pictures: ``DIR/pictures/<entry id>/<stem>_{sagittal,axial}[_plain][_thumb].png`` (:func:`render_qc`);
    * numbers and flags: :func:`lesion_stats`, plus ``lesion-in-control`` when the subject is a healthy control
      in ``participants.tsv`` (:func:`sct_task_sciseg.qc.folder.read_participants_controls`);
    * ``DIR/entries/<entry id>.json`` written atomically, then ``DIR/index.html`` re-rendered under a file lock
      (:func:`sct_task_sciseg.qc.report.add_qc_entry`), so parallel runs can share one ``DIR``.

    ``subject``/``session`` default to the BIDS entities (``sub-*``, ``ses-*``) in ``image_path``; ``bids_root``
    defaults to the nearest parent folder holding ``participants.tsv`` or ``dataset_description.json``, and
    ``dataset`` to that folder's name. ``command`` (the program's ``argv``) and ``generated_by`` (the outputs'
    ``GeneratedBy`` record, see :mod:`sct_task_sciseg.pipeline.provenance`) give the row its command line and
    parameters; :func:`model_note` marks rows made with a demo model. The entry id combines dataset, subject,
    session, file, task and model tag: running the same scan and model again replaces its row.

    ``checks`` (:func:`.plausibility.scan_checks` of these masks, computed here when not given) adds the measured
    plausibility values (``entry["checks"]``) and their flags.

    ``analysis`` (a :class:`~sct_task_sciseg.analysis.LesionAnalysis` of these masks) adds its per-scan numbers
    (``entry["analysis"]``) and the tissue-bridge picture (:func:`.bridges.render_bridges`).
    """
    t0 = time.perf_counter()
    qc_dir, image_path = Path(qc_dir), Path(image_path)
    ctx = ScanContext.of(image_path, dataset, subject, session, bids_root)
    stem = strip_nifti_suffix(image_path.name)
    stats = lesion_stats(masks, image.affine, roles)
    is_control = ctx.is_control()
    checks = dict(checks) if checks else scan_checks(masks, image.affine, roles)
    flags = list(checks.get("flags", ()))
    if is_control and stats["lesion_count"] > 0:
        flags.append("lesion-in-control")
    entry_id = folder.entry_id(ctx.dataset, ctx.subject, ctx.session, stem, task_name, model_tag)
    title = " / ".join(x for x in (ctx.dataset, ctx.subject, ctx.session, image_path.name) if x)
    t1 = time.perf_counter()
    pictures = render_qc(image, masks, qc_dir / "pictures" / entry_id, stem, title=title, roles=roles)
    if analysis is not None:
        from .bridge_pictures import render_bridges
        pictures.update(render_bridges(analysis, qc_dir / "pictures" / entry_id, stem))
    render_ms = (time.perf_counter() - t1) * 1000.0
    entry = {
        "schema": 1, "id": entry_id, "dataset": ctx.dataset, "subject": ctx.subject, "session": ctx.session,
        "file": image_path.name,
        "image_path": str(image_path.resolve()) if image_path.exists() else str(image_path),
        "task": task_name, "model_tag": model_tag, "is_control": is_control,
        "titles": {"cord": roles.structure_title, "lesion": roles.finding_title},
        "shape": [int(s) for s in image.shape[:3]],
        "zooms_mm": [round(float(z), 4) for z in image.header.get_zooms()[:3]],
        "orientation": "".join(c or "?" for c in nib.aff2axcodes(image.affine)),
        "stats": stats, "flags": flags, "checks": {k: v for k, v in checks.items() if k != "flags"},
        "analysis": analysis_numbers(analysis),
        "pictures": {k: p.relative_to(qc_dir).as_posix() for k, p in pictures.items()},
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "render_ms": round(render_ms, 1), "version": __version__,
    }
    entry.update(_run_record(command, generated_by))
    entry.update(model_note(task_name, model_tag, entry["model_sha256"]))
    entry["qc_ms"] = round((time.perf_counter() - t0) * 1000.0, 1)
    return report.add_qc_entry(qc_dir, entry)


def analysis_numbers(analysis) -> Optional[dict]:
    """What the report shows of a lesion analysis: the scan's summary and a few numbers per lesion."""
    if analysis is None:
        return None
    from ..analysis.table import json_value

    keep = ("label", "volume [mm3]", "length [mm]", "max_axial_damage_ratio []",
            "interpolated_dorsal_bridge_width [mm]", "interpolated_ventral_bridge_width [mm]",
            "interpolated_total_bridge_width [mm]", "total_bridge_width_single_slice [mm]", "bridges_from",
            "level_type", "level_rostral", "level_caudal", "right_share [%]", "left_share [%]")
    lesions = [{k: json_value(r.get(k)) for k in keep} for r in analysis.rows if r.get("label")]
    return {"summary": {k: json_value(v) for k, v in analysis.summary.items()}, "lesions": lesions}
