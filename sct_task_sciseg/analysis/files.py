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

PathLike = Union[str, Path]


def load_mask(path: PathLike, what: str = "mask") -> nib.Nifti1Image:
    """A 3-D NIfTI (a singleton 4th dimension is fine) with a usable grid; an all-zero mask is valid."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what} file")
    try:
        img = nib.load(str(path))
        shape = img.shape
        np.asanyarray(img.dataobj)  # reads it: a truncated file fails here, not later
    except nib.filebasedimages.ImageFileError:
        raise InputError(f"{path}: the {what} is not a NIfTI image") from None
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise InputError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"{path}: the {what} is a {type(img).__name__} image, not NIfTI")
    if len(shape) < 3 or (len(shape) > 3 and any(s != 1 for s in shape[3:])):
        raise InputError(f"{path}: the {what} has shape {tuple(shape)}; a 3-D volume is needed")
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise InputError(f"{path}: invalid voxel size {tuple(zooms)} mm in the {what}")
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-12:
        raise InputError(f"{path}: singular or non-finite affine in the {what}")
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
