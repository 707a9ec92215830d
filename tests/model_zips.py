"""Release zips taken apart and put back together, for tests that tamper with a model folder."""
from __future__ import annotations

import zipfile
from pathlib import Path

FOLDER = "nnUNetTrainerDA5__nnUNetPlans__3d_fullres"  # the single root folder of the embedded release


def unpack(release_zip: Path, dest: Path) -> Path:
    with zipfile.ZipFile(release_zip) as zf:
        zf.extractall(dest)
    return dest / FOLDER


def rezip(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{FOLDER}/{p.relative_to(folder).as_posix()}")
    return zip_path
