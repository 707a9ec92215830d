"""Reading masks for the analysis from files: one clear line per problem, empty masks allowed."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Optional, Union

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


def analyze_lesion_files(lesion: PathLike, cord: Optional[PathLike] = None, image: Optional[PathLike] = None,
                         perslice: bool = False, *, connectivity: Optional[int] = None):
    """:func:`analyze_lesions` on files; the result records the source paths."""
    from .analyze import SCT_CONNECTIVITY, analyze_lesions

    lesion_img = load_mask(lesion, "lesion mask")
    cord_img = load_mask(cord, "cord mask") if cord is not None else None
    image_img = load_mask(image, "image") if image is not None else None
    try:
        analysis = analyze_lesions(lesion_img, cord_img, image_img, perslice,
                                   connectivity=connectivity or SCT_CONNECTIVITY,
                                   image_name=image_stem(image) if image is not None else "image")
    except InputError as exc:
        raise InputError(f"{lesion}: {exc.message}") from None
    analysis.sources = {k: str(v) for k, v in (("lesion", lesion), ("cord", cord), ("image", image)) if v}
    return analysis
