"""``-analyze`` in a batch: lesion morphometrics of each segmented scan, written next to its masks.

For an input ``<in>.nii.gz`` the finding output (SCIseg: ``<in>_lesion_seg.nii.gz``) gets
``<in>_lesion_seg_analysis.csv``, ``<in>_lesion_seg_label.nii.gz`` and ``<in>_lesion_seg_analysis.json``; which
masks are the lesion and the cord comes from the task's label scheme. The sidecar keeps the segmentation's
provenance, so a resumed batch redoes an analysis whose masks or parameters changed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

from ..analysis import analysis_paths, analyze_masks, write_analysis
from ..analysis.writer import SCHEMA
from ..io.naming import strip_nifti_suffix


def finding_mask_path(task, outputs: Dict[str, Path]) -> Optional[Path]:
    finding = task.labels.finding
    return outputs.get(finding) if finding else None


def job_analysis_paths(task, outputs: Dict[str, Path]) -> Dict[str, Path]:
    """Where the analysis of a job goes (empty for a task without a finding)."""
    lesion = finding_mask_path(task, outputs)
    return analysis_paths(strip_nifti_suffix(lesion)) if lesion is not None else {}


def analysis_current(task, outputs: Dict[str, Path], provenance: dict) -> bool:
    """True when the analysis files exist and their sidecar names the same segmentation and analysis schema."""
    paths = job_analysis_paths(task, outputs)
    if not paths or not all(p.is_file() for p in paths.values()):
        return False
    try:
        found = json.loads(paths["json"].read_text())
    except (OSError, ValueError):
        return False
    return found.get("Schema") == SCHEMA and found.get("Segmentation") == json.loads(json.dumps(provenance))


def analyze_result(segmenter, outputs: Dict[str, Path], result, input_path: Path):
    """Analyse a :class:`~sct_task_sciseg.pipeline.Segmentation` and write its files; returns the analysis."""
    task = segmenter.task
    analysis = analyze_masks(result.masks, task.labels)
    analysis.sources = {"lesion": str(finding_mask_path(task, outputs)),
                        "cord": str(outputs[task.labels.parent])}
    lesion = finding_mask_path(task, outputs)
    write_analysis(analysis, strip_nifti_suffix(lesion), provenance=segmenter.provenance(input_path),
                   hash_sources=False)  # the masks are written after this: the provenance names them
    return analysis
