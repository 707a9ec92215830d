"""Writing an analysis: ``<base>_analysis.csv``, ``<base>_label.nii.gz`` and the JSON sidecar
``<base>_analysis.json`` (column descriptions, summary, rows, parameters, sources), each atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from .. import __version__
from ..io.atomic import Content, atomic_write_all
from ..io.hashing import sha256_file
from ..io.nifti import image_content
from ..io.outputs import analysis_paths
from .table import describe, json_value, to_csv

ANALYSIS_NAME = "lesion morphometrics (definitions of SCT 7.3 sct_analyze_lesion)"
SCHEMA = 1


def sidecar(analysis, provenance: Optional[dict] = None, hash_sources: bool = True) -> dict:
    """What the JSON sidecar holds; ``provenance`` (of the segmentation that made the masks) is kept as is so
    that a batch can tell whether the analysis is up to date. Sources are hashed unless ``hash_sources`` is
    False (masks analysed in memory before they are written: their segmentation provenance identifies them)."""
    sources = {}
    for role, path in analysis.sources.items():
        p = Path(path)
        sources[role] = {"file": p.name, "sha256": sha256_file(p) if hash_sources and p.is_file() else None}
    return {
        "GeneratedBy": [{"Name": "sct_task_sciseg", "Version": __version__, "Analysis": ANALYSIS_NAME,
                         "Parameters": analysis.parameters}],
        "Schema": SCHEMA,
        "Sources": sources,
        "Segmentation": provenance,
        "Summary": {k: json_value(v) for k, v in analysis.summary.items()},
        "Columns": describe(analysis.columns),
        "Lesions": [{k: json_value(r.get(k)) for k in analysis.columns} for r in analysis.rows],
    }


def analysis_files(analysis, paths: Dict[str, Path], provenance: Optional[dict] = None,
                   hash_sources: bool = True) -> List[Tuple[Path, Content]]:
    """The table, the lesion-id image and the sidecar as ``(path, content)`` for one all-or-none write."""
    return [(paths["csv"], to_csv(analysis.rows, analysis.columns)),
            (paths["label"], image_content(analysis.label_img, paths["label"])),
            (paths["json"], json.dumps(sidecar(analysis, provenance, hash_sources), indent=1, allow_nan=False) + "\n")]


def write_analysis(analysis, out_base: Union[str, Path], provenance: Optional[dict] = None,
                   label_suffix: str = ".nii.gz", hash_sources: bool = True) -> Dict[str, Path]:
    """Write the table, the lesion-id image and the sidecar: all three or none."""
    paths = analysis_paths(out_base, label_suffix)
    atomic_write_all(analysis_files(analysis, paths, provenance, hash_sources))
    return paths
