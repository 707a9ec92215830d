"""Drawing the mosaics: grey levels windowed on robust percentiles, SCT's colours, labels (Pillow)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import List

import numpy as np
from scipy import ndimage

from .geometry import CanonicalScan
from .panels import Panel, sample_grey, thick_axes

CORD_RGB = (255, 0, 0)  # SCT's cord colour
LESION_RGB = (0, 255, 255)  # SCT's lesion colour
CORD_FILL_ALPHA = 0.22  # light fill, the interior signal stays readable ...
CORD_EDGE_ALPHA = 0.85  # ... and a crisp outline shows the boundary
LESION_FILL_ALPHA = 0.45
LESION_EDGE_ALPHA = 1.0
BACKGROUND = 16  # canvas grey (neutral: no hue)
TEXT_RGB = (235, 235, 235)
DIM_TEXT_RGB = (160, 160, 160)
WINDOW_PERCENTILES = (0.5, 99.5)


@lru_cache(maxsize=8)
def _font(size: int, bold: bool = False):
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    candidates = []
    try:
        import importlib.util

        spec = importlib.util.find_spec("matplotlib")
        if spec and spec.submodule_search_locations:
            candidates.append(Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf" / name)
    except (ImportError, ValueError):
        pass
    candidates.append(Path("/usr/share/fonts/truetype/dejavu") / name)
    for path in candidates:
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _edge(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Inner boundary of a 2-D mask, ``width`` pixels thick (inside the mask)."""
    if not mask.any():
        return mask
    inner = ndimage.binary_erosion(mask, iterations=width, border_value=1)  # a mask cut by the panel edge
    # goes on beyond it: no outline there
    return mask & ~inner


def _blend(rgb: np.ndarray, where: np.ndarray, colour, alpha: float):
    if where.any():
        c = np.asarray(colour, np.float32)
        rgb[where] = rgb[where] * (1.0 - alpha) + c * alpha


def compose(scan: CanonicalScan, panels: List[Panel], width: int, height: int):
    """Sample every panel, window the grey levels on robust percentiles, and paint overlay + plain canvases."""
    greys, looks = [], []
    cord_flat, lesion_flat = scan.cord.ravel(), scan.lesion.ravel()
    thick = thick_axes(scan.zooms)
    for p in panels:
        flat, inside = p.index(scan.cord.shape)
        greys.append(sample_grey(scan.image, p, thick))
        looks.append((inside, cord_flat[flat] & inside, lesion_flat[flat] & inside))
    values = np.concatenate([g[v[0]] for g, v in zip(greys, looks)]) if panels else np.zeros(0)
    if values.size == 0:
        values = np.zeros(1)
    lo, hi = np.percentile(values, WINDOW_PERCENTILES)
    if hi <= lo:
        hi = lo + 1.0
    plain = np.full((height, width, 3), BACKGROUND, np.uint8)
    overlay = plain.copy()
    for p, g, (inside, cord, lesion) in zip(panels, greys, looks):
        h, w = p.shape
        grey = np.clip((g - lo) * (255.0 / (hi - lo)), 0, 255)
        grey = np.where(inside, grey, 0.0).astype(np.float32)
        plain[p.top:p.top + h, p.left:p.left + w] = np.rint(grey)[..., None].astype(np.uint8)
        if not (cord.any() or lesion.any()):
            overlay[p.top:p.top + h, p.left:p.left + w] = plain[p.top:p.top + h, p.left:p.left + w]
            continue
        rgb = np.repeat(grey[..., None], 3, axis=2)
        edge_w = 2 if min(h, w) >= 120 else 1
        _blend(rgb, cord & ~lesion, CORD_RGB, CORD_FILL_ALPHA)
        _blend(rgb, _edge(cord, edge_w) & ~lesion, CORD_RGB, CORD_EDGE_ALPHA)
        _blend(rgb, lesion, LESION_RGB, LESION_FILL_ALPHA)
        _blend(rgb, _edge(lesion, 1), LESION_RGB, LESION_EDGE_ALPHA)
        overlay[p.top:p.top + h, p.left:p.left + w] = np.rint(rgb).astype(np.uint8)
    return overlay, plain


def draw_text(draw, xy, text, size=12, fill=TEXT_RGB, anchor="la", bold=False, max_width=None):
    """Text at ``xy`` in the QC pictures' font, cut with an ellipsis to ``max_width`` pixels."""
    font = _font(size, bold)
    if max_width is not None and draw.textlength(text, font=font) > max_width:
        while len(text) > 4 and draw.textlength(text + "…", font=font) > max_width:
            text = text[:-1]
        text += "…"
    draw.text(xy, text, fill=fill, font=font, anchor=anchor)


def annotate(canvas: np.ndarray, kind: str, panels: List[Panel], geometry: dict, title: str, plain: bool,
             names=("cord", "lesion")):
    """``canvas`` with its title, legend (``names``: structure and finding; ``plain``: no overlay), panel labels and
    orientation letters drawn on it."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    width = canvas.shape[1]
    what = ("Sagittal, curved to follow the cord" if kind == "sagittal"
            else "Axial slices along the cord, R on the left; tile label = slice index in the input")
    legend = "no overlay" if plain else f"{names[0]} red · {names[1]} cyan"
    draw_text(draw, (10, 6), title, 14, bold=True, max_width=width * 0.5)
    draw_text(draw, (width - 10, 7), f"{what} · {legend}", 12, DIM_TEXT_RGB, anchor="ra",
              max_width=width * 0.48)
    for p in panels:
        h, w = p.shape
        if kind == "sagittal":
            side, label_h = geometry["side"], geometry["label_h"]
            draw_text(draw, (p.left + w / 2, p.top - side - label_h + 2), p.label, 12, anchor="ma", max_width=w + 30)
            draw_text(draw, (p.left + w / 2, p.top - side / 2), "S", 13, anchor="mm", bold=True)
            draw_text(draw, (p.left + w / 2, p.top + h + side / 2), "I", 13, anchor="mm", bold=True)
            draw_text(draw, (p.left - side / 2, p.top + h / 2), "A", 13, anchor="mm", bold=True)
            draw_text(draw, (p.left + w + side / 2, p.top + h / 2), "P", 13, anchor="mm", bold=True)
        else:
            draw_text(draw, (p.left + 1, p.top - 3), p.label, 12, anchor="ld")
            if p.marks:
                draw_text(draw, (p.left + w - 1, p.top - 3), p.marks, 12, anchor="rd", max_width=w * 0.6)
            # orientation letters inside the tile edges, away from the cord in the centre
            draw_text(draw, (p.left + w / 2, p.top + 2), "A", 11, DIM_TEXT_RGB, anchor="ma")
            draw_text(draw, (p.left + w / 2, p.top + h - 2), "P", 11, DIM_TEXT_RGB, anchor="md")
            draw_text(draw, (p.left + 3, p.top + h / 2), "R", 11, DIM_TEXT_RGB, anchor="lm")
            draw_text(draw, (p.left + w - 3, p.top + h / 2), "L", 11, DIM_TEXT_RGB, anchor="rm")
    return np.asarray(img)
