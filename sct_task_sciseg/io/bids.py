"""The ``dataset_description.json`` of a BIDS derivatives folder (BIDS 1.9: required in every derivative
dataset), written once when a BIDS dataset's scans are segmented into an output folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .atomic import atomic_write

BIDS_VERSION = "1.9.0"
DESCRIPTION = "dataset_description.json"


def dataset_name(bids_root: Path) -> Optional[str]:
    """The ``Name`` of a BIDS dataset's ``dataset_description.json`` (None: no file, no name, unreadable)."""
    try:
        name = json.loads((Path(bids_root) / DESCRIPTION).read_text(encoding="utf-8")).get("Name")
    except (OSError, ValueError, AttributeError):
        return None
    return name.strip() if isinstance(name, str) and name.strip() else None


def describe_derivatives(folder: Path, bids_root: Path, generated_by: dict) -> Optional[Path]:
    """Write ``folder/dataset_description.json`` (``DatasetType: derivative``, ``GeneratedBy``,
    ``SourceDatasets``) unless the folder already has one (a derivatives folder shared with other tools keeps
    its own); returns the path written, or None."""
    path = Path(folder) / DESCRIPTION
    if path.exists():
        return None
    source = {"URL": Path(bids_root).resolve().as_uri()}
    try:
        raw = json.loads((Path(bids_root) / DESCRIPTION).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = {}
    if isinstance(raw, dict) and isinstance(raw.get("DatasetDOI"), str):
        source["DOI"] = raw["DatasetDOI"]
    name = dataset_name(bids_root) or Path(bids_root).resolve().name
    gen = {"Name": generated_by.get("Name", "sct_task_sciseg"), "Version": generated_by.get("Version"),
           "CodeURL": generated_by.get("ModelCodeURL"),
           "Description": f"{generated_by.get('Task')}@{generated_by.get('Release')} (nnU-Net v2)"}
    description = {"Name": f"{name}: SCIseg spinal cord and lesion segmentations", "BIDSVersion": BIDS_VERSION,
                   "DatasetType": "derivative", "GeneratedBy": [{k: v for k, v in gen.items() if v}],
                   "SourceDatasets": [source]}
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(description, indent=2) + "\n")
    return path
