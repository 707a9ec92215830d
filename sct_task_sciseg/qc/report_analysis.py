"""The lesion-analysis columns of the QC index (shown when any scan was run with ``-analyze``)."""
from __future__ import annotations

import html
from typing import List
from urllib.parse import quote

COLUMNS = [  # key, header, type, tooltip — inserted before the flags column
    ("lesion_length", "Length mm", "num", "total lesion length (sum over lesions, SCT's definition)"),
    ("damage", "Damage", "num", "largest axial damage ratio (lesion / cord area on one axial slice)"),
    ("bridges", "Bridges mm", "num", "tissue bridges of the largest lesion on the interpolated midsagittal "
                                    "slice: dorsal / ventral (sorts by their sum; hover for every lesion)"),
    ("bridges_pic", "Bridge QC", "none", "midsagittal plane of each lesion with the measured bridges"),
]


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _n(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


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
    pics = entry.get("pictures") or {}
    full, thumb = pics.get("bridges"), pics.get("bridges_thumb") or pics.get("bridges")
    pic = (f'<td class=pic><a href="{_e(quote(full, safe="/"))}"><img src="{_e(quote(thumb, safe="/"))}" '
           f'alt="tissue bridges of {_e(entry.get("file"))}"></a></td>') if full else "<td class=pic>–</td>"
    return [
        f'<td class=num data-sort="{_e(length)}">{_n(length, 1)}</td>',
        f'<td class=num data-sort="{_e(damage)}">{_n(damage, 2)}</td>',
        f'<td class=num data-sort="{_e(total)}" title="{_e(title)}">'
        f'{"–" if total is None else f"{d:.2f} / {v:.2f}"}</td>',
        pic,
    ]
