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
from .values import MaskValueError

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
                         perslice: bool = False, *, connectivity: Optional[int] = None,
                         template: Optional[PathLike] = None, levels: Optional[PathLike] = None,
                         level_type: Optional[str] = None, nli_slice: Optional[int] = None,
                         soft_threshold: Optional[float] = None, atlas_per_slice: bool = False):
    """:func:`analyze_lesions` on files (``template``: a ``-f`` folder; ``levels``: a labelled cord); the result
    records the source paths. An error names the file it is about."""
    from .analyze import SCT_CONNECTIVITY, Options, analyze_lesions
    from .atlas import load_template
    from .grid import Grid

    lesion_img = load_mask(lesion, "lesion mask")
    cord_img = load_mask(cord, "cord mask") if cord is not None else None
    image_img = load_mask(image, "image") if image is not None else None
    levels_img = load_mask(levels, "labelled cord") if levels is not None else None
    files = {"lesion mask": lesion, "lesion probability map": lesion, "cord mask": cord, "image": image,
             "labelled cord": levels}
    try:
        tmpl = None
        if template is not None:
            grid = Grid.of(lesion_img.shape, lesion_img.affine, lesion_img.header.get_zooms())
            tmpl = load_template(template, lesion_img, grid)
        opts = Options(nli_slice=nli_slice, template=tmpl, levels_img=levels_img, level_type=level_type,
                       soft_threshold=soft_threshold, atlas_per_slice=atlas_per_slice)
        analysis = analyze_lesions(lesion_img, cord_img, image_img, perslice,
                                   connectivity=connectivity or SCT_CONNECTIVITY,
                                   image_name=image_stem(image) if image is not None else "image", options=opts)
    except MaskValueError as exc:
        raise InputError(f"{files.get(exc.role) or lesion}: {exc.message}") from None
    except InputError as exc:
        raise InputError(exc.message if exc.message.startswith(str(template or "\0")) else
                         f"{lesion}: {exc.message}") from None
    analysis.sources = {k: str(v) for k, v in (("lesion", lesion), ("cord", cord), ("image", image),
                                                ("levels", levels), ("template", template)) if v}
    return analysis
