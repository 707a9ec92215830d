"""QC picture of the tissue bridges: per lesion, the interpolated midsagittal plane of the analysis (cord red,
lesion cyan, blended between the two sagittal slices as measured) with the minimum dorsal and ventral bridges
drawn as lines where they were measured. S is up, anterior (ventral) on the left, as SCT's analyze-lesion QC
shows it; pixels are square in millimetres."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from ..io.atomic import atomic_write
from .draw import BACKGROUND, CORD_RGB, DIM_TEXT_RGB, LESION_RGB, draw_text

DORSAL_RGB = (255, 220, 0)
VENTRAL_RGB = (80, 255, 80)
MARGIN_MM = 6.0
PANEL_MM_PX = (160, 420)  # smallest and largest panel height in pixels
LABEL_H = 52
MAX_PANELS = 8


def _panel(analysis, detail):
    """(RGB array, pixels per mm, A-P and S-I crop in voxels) of one lesion's midsagittal plane."""
    mid, cord = analysis.midsagittal, analysis.cord
    _, py, pz = analysis.grid.rpi_zooms
    ny, nz = cord.shape[1:]
    lesion_plane = np.zeros((ny, nz))
    ox, oy, oz = detail.lesion.origin
    crop = detail.lesion.plane(mid)
    lesion_plane[oy:oy + crop.shape[0], oz:oz + crop.shape[1]] = crop
    cord_plane = mid.plane(cord)
    zs = detail.lesion.z_slices
    z0, z1 = max(0, int(zs[0] - MARGIN_MM / pz)), min(nz, int(zs[-1] + MARGIN_MM / pz) + 1)
    ys = np.nonzero(cord_plane[:, z0:z1].any(axis=1) | lesion_plane[:, z0:z1].any(axis=1))[0]
    y0, y1 = max(0, int(ys[0] - 2 / py)), min(ny, int(ys[-1] + 2 / py) + 1)
    height_mm = (z1 - z0) * pz
    scale = float(np.clip(PANEL_MM_PX[1] / height_mm, PANEL_MM_PX[0] / height_mm, 24.0))
    rows = int(round(height_mm * scale))
    cols = max(int(round((y1 - y0) * py * scale)), 140)
    z_of_row = np.clip(z1 - 1 - np.floor(np.arange(rows) / (scale * pz)).astype(int), z0, z1 - 1)
    centre_y = (y0 + y1) / 2.0
    y_of_col = np.floor(centre_y + (cols / 2.0 - np.arange(cols) - 0.5) / (scale * py) + 0.5).astype(int)
    inside = (y_of_col >= 0) & (y_of_col < ny)
    y_idx = np.clip(y_of_col, 0, ny - 1)
    c = cord_plane[np.ix_(y_idx, z_of_row)].T * inside
    les = lesion_plane[np.ix_(y_idx, z_of_row)].T * inside
    rgb = np.full((rows, cols, 3), 30.0)
    for colour, weight in ((CORD_RGB, 0.55 * c), (LESION_RGB, 0.9 * les)):
        rgb = rgb * (1 - weight[..., None]) + np.asarray(colour, float) * weight[..., None]
    geometry = {"scale": scale, "z1": z1, "centre_y": centre_y, "cols": cols, "py": py, "pz": pz}
    return np.rint(rgb).astype(np.uint8), geometry


def _lines(draw, detail, geometry, left: int, top: int) -> None:
    g = geometry

    def px(y: float, z: float):
        col = g["cols"] / 2.0 - (y - g["centre_y"]) * g["scale"] * g["py"]
        row = (g["z1"] - z - 0.5) * g["scale"] * g["pz"]
        return left + col, top + row

    for name, colour in (("dorsal", DORSAL_RGB), ("ventral", VENTRAL_RGB)):
        seg = detail.bridges.drawing.get(name)
        if seg is None:
            continue
        (xa, ya), (xb, _) = px(seg.y0, seg.z), px(seg.y1, seg.z)
        draw.line([(xa, ya), (xb, ya)], fill=colour, width=3)
        for x in (xa, xb):
            draw.line([(x, ya - 5), (x, ya + 5)], fill=colour, width=2)
        draw_text(draw, ((xa + xb) / 2, ya - 7), f"{seg.mm:.2f}", 12, colour, anchor="md")


def render_bridges(analysis, out_dir: Path, stem: str) -> Dict[str, Path]:
    """Write ``<stem>_bridges.png`` (one panel per lesion, at most 8) and its thumbnail; {} without lesions
    or without a midsagittal slice."""
    from PIL import Image, ImageDraw

    if analysis.midsagittal is None or analysis.cord is None or not analysis.lesions:
        return {}
    panels: List[tuple] = []
    for detail in analysis.lesions[:MAX_PANELS]:
        panels.append((detail,) + _panel(analysis, detail))
    gap = 16
    width = sum(p[1].shape[1] for p in panels) + gap * (len(panels) + 1)
    height = max(p[1].shape[0] for p in panels) + LABEL_H + 40
    canvas = Image.new("RGB", (max(width, 560), height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    draw_text(draw, (10, 6), f"Tissue bridges on the interpolated midsagittal slice "
              f"(R-L {analysis.summary['interpolated_midsagittal_slice']:.2f})", 13, bold=True)
    left = gap
    for detail, rgb, geometry in panels:
        top = LABEL_H
        canvas.paste(Image.fromarray(rgb), (left, top))
        b = detail.bridges
        head = f"lesion {detail.label}"
        if b.source == "midsagittal":
            sub = f"dorsal {b.dorsal:.2f} · ventral {b.ventral:.2f} mm"
        elif b.source == "cord_ap_diameter":
            sub = "off the midsagittal slices: ½ cord A-P"
        else:
            sub = "no bridges measured"
        draw_text(draw, (left, 26), head, 12, bold=True)
        draw_text(draw, (left, 40), sub, 11, DIM_TEXT_RGB, max_width=rgb.shape[1] + gap)
        draw_text(draw, (left + 2, top + 2), "A", 11, DIM_TEXT_RGB)
        draw_text(draw, (left + rgb.shape[1] - 2, top + 2), "P", 11, DIM_TEXT_RGB, anchor="ra")
        _lines(draw, detail, geometry, left, top)
        left += rgb.shape[1] + gap
    draw_text(draw, (10, height - 18), "S up, anterior left · cord red, lesion cyan · dorsal bridge yellow, "
                                       "ventral green (mm)", 11, DIM_TEXT_RGB)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"bridges": out_dir / f"{stem}_bridges.png", "bridges_thumb": out_dir / f"{stem}_bridges_thumb.png"}
    atomic_write(paths["bridges"], lambda fh: canvas.save(fh, format="PNG", compress_level=1))
    thumb = canvas.copy()
    thumb.thumbnail((240, 170))
    atomic_write(paths["bridges_thumb"], lambda fh: thumb.save(fh, format="PNG", compress_level=1))
    return paths
