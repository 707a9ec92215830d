"""Writing an analysis: ``<base>_analysis.csv``, ``<base>_label.nii.gz`` and the JSON sidecar
``<base>_analysis.json`` (column descriptions, summary, rows, parameters, sources), each atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Union

from .. import __version__
from ..io.atomic import atomic_write
from ..io.hashing import sha256_file
from ..io.nifti import save_image
from .table import describe, json_value, to_csv

ANALYSIS_NAME = "lesion morphometrics (definitions of SCT 7.3 sct_analyze_lesion)"
SCHEMA = 1


def analysis_paths(base: Union[str, Path], label_suffix: str = ".nii.gz") -> Dict[str, Path]:
    base = str(base)
    return {"csv": Path(f"{base}_analysis.csv"), "label": Path(f"{base}_label{label_suffix}"),
            "json": Path(f"{base}_analysis.json")}


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


def write_analysis(analysis, out_base: Union[str, Path], provenance: Optional[dict] = None,
                   label_suffix: str = ".nii.gz", hash_sources: bool = True) -> Dict[str, Path]:
    """Write the table, the lesion-id image and the sidecar (sidecar last: its presence means complete)."""
    paths = analysis_paths(out_base, label_suffix)
    atomic_write(paths["csv"], to_csv(analysis.rows, analysis.columns))
    save_image(analysis.label_img, paths["label"])
    atomic_write(paths["json"], json.dumps(sidecar(analysis, provenance, hash_sources), indent=1, allow_nan=False) + "\n")
    return paths
