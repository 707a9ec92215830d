"""The analysis of mask files (``sciseg_analyze_lesion``): every input read with one clear line per problem,
errors naming the file they are about."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..errors import InputError
from .analyze import SCT_CONNECTIVITY, Options, analyze_lesions
from .atlas import load_template
from .mask_files import image_stem, load_mask
from .grid import Grid
from .values import MaskValueError

PathLike = Union[str, Path]


def analyze_lesion_files(lesion: PathLike, cord: Optional[PathLike] = None, image: Optional[PathLike] = None,
                         perslice: bool = False, *, connectivity: Optional[int] = None,
                         template: Optional[PathLike] = None, levels: Optional[PathLike] = None,
                         level_type: Optional[str] = None, nli_slice: Optional[int] = None,
                         soft_threshold: Optional[float] = None, atlas_per_slice: bool = False):
    """:func:`analyze_lesions` on files (``template``: a ``-f`` folder; ``levels``: a labelled cord); the result
    records the source paths. An error names the file it is about."""
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
