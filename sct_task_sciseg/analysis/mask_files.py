"""Reading masks for the analysis from files: one clear line per problem, empty masks allowed."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Union

import nibabel as nib
import numpy as np

from ..errors import InputError
from ..io.naming import strip_nifti_suffix
from ..io.nifti import read_header

PathLike = Union[str, Path]


def load_mask(path: PathLike, what: str = "mask") -> nib.Nifti1Image:
    """A 3-D NIfTI (a singleton 4th dimension is fine) whose header passes :func:`~sct_task_sciseg.io.nifti.
    read_header`; its data are read here, so a truncated file fails now. An all-zero mask is valid."""
    try:
        img = read_header(path).image
        np.asanyarray(img.dataobj)
    except InputError as exc:
        raise InputError(f"{exc.message} (the {what})") from None
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise InputError(f"{path}: unreadable {what} ({exc})") from None
    return img


def image_stem(path: PathLike) -> str:
    """SCT's name for an image in column names (``mean_<stem>``): the file name without .nii/.nii.gz."""
    return Path(strip_nifti_suffix(Path(path).name)).name
