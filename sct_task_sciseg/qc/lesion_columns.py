"""The lesion-analysis columns of the QC index (shown when any scan was run with ``-analyze``)."""
from __future__ import annotations

import html
from typing import List
from urllib.parse import quote

COLUMNS = [  # key, header, type, tooltip — inserted before the flags column
    ("lesion_length", "Length mm", "num", "total lesion length (sum over lesions, SCT's definition); below: "
                                          "levels and side of the largest lesion (hover for every lesion)"),
    ("damage", "Damage", "num", "largest axial damage ratio (lesion / cord area on one axial slice)"),
    ("bridges", "Bridges mm", "num", "tissue bridges of the largest lesion on the interpolated midsagittal "
                                    "slice: dorsal / ventral (sorts by their sum; hover for every lesion)"),
    ("bridges_pic", "Bridge QC", "none", "midsagittal plane of each lesion with the measured bridges"),
]


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _n(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def where(lesion: dict) -> str:
    """Levels and side of one lesion in a few characters: ``vert 4–5 · R 80%``."""
    parts = []
    top, bottom = lesion.get("level_rostral"), lesion.get("level_caudal")
    if top is not None:
        kind = "spinal" if lesion.get("level_type") == "spinal" else "vert"
        parts.append(f"{kind} {top}" + (f"–{bottom}" if bottom not in (None, top) else ""))
    right, left = lesion.get("right_share [%]"), lesion.get("left_share [%]")
    if right is not None and left is not None:
        parts.append(f"R {right:.0f}%" if right > left else f"L {left:.0f}%" if left > right else "R = L")
    return " · ".join(parts)


def cells(entry: dict) -> List[str]:
    analysis = entry.get("analysis") or {}
    summary, lesions = analysis.get("summary") or {}, analysis.get("lesions") or []
    length, damage = summary.get("total_length [mm]"), summary.get("max_axial_damage_ratio []")
    largest = max(lesions, key=lambda r: r.get("volume [mm3]") or 0.0) if lesions else {}
    d, v = largest.get("interpolated_dorsal_bridge_width [mm]"), largest.get("interpolated_ventral_bridge_width [mm]")
    total = None if d is None or v is None else d + v
    title = ", ".join(f"lesion {r['label']}: {_n(r.get('interpolated_dorsal_bridge_width [mm]'), 2)} / "
                      f"{_n(r.get('interpolated_ventral_bridge_width [mm]'), 2)} mm ({r.get('bridges_from')})"
                      for r in lesions[:20])
    place = where(largest) if largest else ""
    places = ", ".join(f"lesion {r['label']}: {where(r)}" for r in lesions[:20] if where(r))
    pics = entry.get("pictures") or {}
    full, thumb = pics.get("bridges"), pics.get("bridges_thumb") or pics.get("bridges")
    pic = (f'<td class=pic><a href="{_e(quote(full, safe="/"))}"><img src="{_e(quote(thumb, safe="/"))}" '
           f'alt="tissue bridges of {_e(entry.get("file"))}"></a></td>') if full else "<td class=pic>–</td>"
    return [
        f'<td class=num data-sort="{_e(length)}" title="{_e(places)}">{_n(length, 1)}'
        + (f'<div class=small>{_e(place)}</div>' if place else "") + '</td>',
        f'<td class=num data-sort="{_e(damage)}">{_n(damage, 2)}</td>',
        f'<td class=num data-sort="{_e(total)}" title="{_e(title)}">'
        f'{"–" if total is None else f"{d:.2f} / {v:.2f}"}</td>',
        pic,
    ]
