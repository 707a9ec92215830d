"""``-analyze`` in a batch: lesion morphometrics of each segmented scan, written next to its masks.

For an input ``<in>.nii.gz`` the finding output (SCIseg: ``<in>_lesion_seg.nii.gz``) gets
``<in>_lesion_seg_analysis.csv``, ``<in>_lesion_seg_label.nii.gz`` and ``<in>_lesion_seg_analysis.json``
(:class:`~sct_task_sciseg.io.outputs.ScanOutputs`), written in the same all-or-none set as the masks; which
masks are the lesion and the cord comes from the task's label scheme. The sidecar keeps the segmentation's
provenance, so a resumed batch redoes an analysis whose masks or parameters changed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple

from ..analysis import analyze_masks
from ..analysis.result_files import SCHEMA, analysis_files
from ..io.atomic import Content
from ..io.outputs import ScanOutputs


def analysis_current(plan: ScanOutputs, provenance: dict) -> bool:
    """True when the analysis files exist and their sidecar names the same segmentation and analysis schema."""
    paths = plan.analysis
    if not paths or not all(p.is_file() for p in paths.values()):
        return False
    try:
        found = json.loads(paths["json"].read_text())
    except (OSError, ValueError):
        return False
    return found.get("Schema") == SCHEMA and found.get("Segmentation") == json.loads(json.dumps(provenance))


def analyze_result(segmenter, plan: ScanOutputs, result, input_path: Path) -> Tuple[object, List[Tuple[Path, Content]]]:
    """(analysis of a :class:`~sct_task_sciseg.pipeline.Segmentation`, its files to write with the masks)."""
    labels = segmenter.task.labels
    analysis = analyze_masks(result.masks, labels)
    analysis.sources = {"lesion": str(plan.masks[labels.finding]), "cord": str(plan.masks[labels.parent])}
    files = analysis_files(analysis, plan.analysis, provenance=segmenter.provenance(input_path),
                           hash_sources=False)  # written with the masks: the provenance names them
    return analysis, files
