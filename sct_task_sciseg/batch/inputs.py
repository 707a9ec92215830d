"""What a batch segments: NIfTI files, folders of them, BIDS datasets; and where each one's outputs go."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..io.naming import is_nifti, is_output_folder, output_base, strip_nifti_suffix

BIDS_PATTERNS = ("sub-*/anat/*_T2w.nii*", "sub-*/ses-*/anat/*_T2w.nii*")


@dataclass
class Item:
    """One input and where it came from (the folder it was found in, for mirroring under an output folder)."""

    path: Path
    root: Optional[Path] = None


def is_bids(folder: Path) -> bool:
    return any(p.is_dir() for p in folder.glob("sub-*"))


def _found_in(folder: Path) -> List[Path]:
    if is_bids(folder):
        return sorted({q for pattern in BIDS_PATTERNS for q in folder.glob(pattern) if is_nifti(q)})
    return sorted(q for q in folder.iterdir() if q.is_file() and is_nifti(q)
                  and not strip_nifti_suffix(q.name).endswith("_seg"))


def expand(items: Sequence[str]) -> List[Item]:
    """Files as given; a folder → its NIfTI files; a BIDS dataset → its T2w scans (duplicates removed)."""
    out: List[Item] = []
    seen = set()
    for entry in items:
        p = Path(entry)
        new = [Item(q, p) for q in _found_in(p)] if p.is_dir() else [Item(p, None)]
        for it in new:
            key = os.path.abspath(it.path)
            if key not in seen:
                seen.add(key)
                out.append(it)
    return out


def output_base_for(item: Item, output: Optional[str]) -> Path:
    """Base path of an input's outputs: beside it, ``-o X.nii.gz``, or under ``-o DIR/`` mirroring its folder."""
    if is_output_folder(output) and item.root is not None:
        parent, root = item.path.parent.resolve(), item.root.resolve()
        rel = parent.relative_to(root) if parent.is_relative_to(root) else Path()
        return output_base(item.path, str(Path(output) / rel) + os.sep)
    return output_base(item.path, output)
