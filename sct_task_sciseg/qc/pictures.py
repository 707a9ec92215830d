"""The QC pictures of one scan: sagittal and axial mosaics, each with a plain twin and thumbnails."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import nibabel as nib
import numpy as np

from ..io.atomic import atomic_write
from .draw import annotate, compose
from .geometry import Roles, canonical_scan, cord_centreline, lesion_components
from .panels import Panel, axial_panels, sagittal_panels


@dataclass
class Mosaic:
    """A composed picture: overlay and plain RGB arrays of the same layout, and its panels."""

    overlay: np.ndarray  # (H, W, 3) uint8
    plain: np.ndarray
    panels: List[Panel]
    thumb_box: Optional[Tuple[int, int, int, int]] = None  # (left, top, right, bottom) shown in the thumbnail


def render_mosaics(image: nib.spatialimages.SpatialImage, masks: Mapping[str, object],
                   title: str = "", *, roles: Roles) -> Dict[str, Mosaic]:
    """The sagittal and axial mosaics as arrays (no file written): ``{'sagittal': Mosaic, 'axial': Mosaic}``."""
    scan = canonical_scan(image, masks, roles)
    names = (roles.structure_title, roles.finding_title)
    cx, cy, has_cord = cord_centreline(scan.cord, scan.zooms)
    comps = lesion_components(scan.lesion)
    title_h = 28
    out = {}
    for kind, build in (("sagittal", lambda: sagittal_panels(scan, cx, cy, has_cord, comps, title_h)),
                        ("axial", lambda: axial_panels(scan, cx, cy, comps, title_h))):
        panels, geometry = build()
        overlay, plain = compose(scan, panels, geometry["width"], geometry["height"])
        overlay = annotate(overlay, kind, panels, geometry, title, plain=False, names=names)
        plain = annotate(plain, kind, panels, geometry, title, plain=True, names=names)
        box = None
        if kind == "sagittal":  # thumbnail: the centreline slice with its labels
            p = next((q for q in panels if q.label.startswith("centreline")), panels[len(panels) // 2])
            side, label_h = geometry["side"], geometry["label_h"]
            box = (p.left - side, p.top - side - label_h, p.left + p.shape[1] + side, p.top + p.shape[0] + side)
        out[kind] = Mosaic(overlay, plain, panels, box)
    return out


def _save_png(array: np.ndarray, path: Path, thumb: Optional[Tuple[int, int]] = None, box=None):
    from PIL import Image

    if box is not None:
        array = array[box[1]:box[3], box[0]:box[2]]
    if array.ndim == 3 and np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0],
                                                                                          array[..., 2]):
        array = array[..., 0]  # grey: a third of the bytes to compress
    img = Image.fromarray(array)
    if thumb is not None:
        img.thumbnail(thumb, Image.Resampling.BILINEAR if hasattr(Image, "Resampling") else Image.BILINEAR,
                      reducing_gap=2.0)
    atomic_write(path, lambda fh: img.save(fh, format="PNG", compress_level=1))


THUMB_SIZE = {"sagittal": (320, 300), "axial": (560, 300)}  # shown up to 260 px high in the report


def render_qc(image: nib.spatialimages.SpatialImage, masks: Mapping[str, object], out_dir: Path, stem: str,
              title: Optional[str] = None, *, roles: Roles) -> Dict[str, Path]:
    """Write the QC pictures of one scan into ``out_dir`` and return their paths.

    ``masks``: uint8 0/1 images or arrays on the image grid, keyed by output name (``roles`` says which is
    the structure and which the finding; a missing finding is drawn as none). Keys of the result: ``sagittal``, ``sagittal_plain``, ``axial``, ``axial_plain`` (full
    size, ``<stem>_<key>.png``) and the same with ``_thumb`` appended (small copies for an index page; the
    sagittal thumbnail shows the centreline slice only).
    Files are written atomically (temporary name, then rename).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mosaics = render_mosaics(image, masks, title if title is not None else stem, roles=roles)
    paths = {}
    for kind, mosaic in mosaics.items():
        for variant, array in (("", mosaic.overlay), ("_plain", mosaic.plain)):
            key = f"{kind}{variant}"
            paths[key] = out_dir / f"{stem}_{key}.png"
            _save_png(array, paths[key])
            paths[f"{key}_thumb"] = out_dir / f"{stem}_{key}_thumb.png"
            _save_png(array, paths[f"{key}_thumb"], thumb=THUMB_SIZE[kind], box=mosaic.thumb_box)
    return paths
