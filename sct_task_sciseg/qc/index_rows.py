"""The rows of the QC index: one entry's cells (subject, file, model, pictures, measures, flags, review) and the
flags' descriptions and colours. :func:`entry_problem` says whether an entry can be rendered at all."""
from __future__ import annotations

import html
import json
from typing import Dict, List, Optional
from urllib.parse import quote

from . import lesion_columns
from .plausibility import FLAGS as PLAUSIBILITY_FLAGS
from .plausibility import SEVERITY as PLAUSIBILITY_SEVERITY
from .triage import checks_line, triage_rank

FLAG_DESCRIPTIONS: Dict[str, str] = {
    "empty-cord": "no cord voxel was segmented",
    "lesion-outside-cord": "lesion voxels outside the cord mask",
    "cord-at-fov-edge": "the cord touches a R/L or A/P edge of the field of view (cut off?)",
    "lesion-at-fov-edge": "a lesion touches the edge of the field of view (its volume may be truncated)",
    "lesion-in-control": "lesion found in a subject listed as a healthy control in participants.tsv",
}
FLAG_DESCRIPTIONS.update(PLAUSIBILITY_FLAGS)
FLAG_SEVERITY = {"empty-cord": "bad", "lesion-in-control": "bad", "lesion-outside-cord": "bad",
                 "cord-at-fov-edge": "warn", "lesion-at-fov-edge": "warn", **PLAUSIBILITY_SEVERITY}


def entry_problem(entry: object) -> Optional[str]:
    """Why ``entry`` cannot be shown in the report (not a dict with an id, or a field the page cannot render)."""
    if not isinstance(entry, dict) or not entry.get("id"):
        return "not a QC entry (a JSON object with an id)"
    try:
        row(entry, 0, True)
        entry_titles([entry])
        flag_options([entry])
    except Exception as exc:  # noqa: BLE001 - any field of a foreign or edited file may be wrong
        return f"{type(exc).__name__}: {exc}"
    return None


def escape(value) -> str:
    """``value`` as HTML text or attribute (``None`` → empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def _url(rel: Optional[str]) -> str:
    return quote(rel, safe="/") if rel else ""


def _num(value, digits=1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u202f")
    return f"{value:,.{digits}f}".replace(",", "\u202f")


def _thumb_cell(entry: dict, kind: str) -> str:
    pics = entry.get("pictures") or {}
    full, plain = pics.get(kind), pics.get(f"{kind}_plain")
    thumb, plain_thumb = pics.get(f"{kind}_thumb") or full, pics.get(f"{kind}_plain_thumb") or plain
    if not full:
        return f"<td class='pic {kind}'>–</td>"
    alt = f"{kind} QC of {entry.get('file', '')}"
    plain_img = (f'<img class=pl src="{escape(_url(plain_thumb))}" data-thumb="{escape(_url(plain_thumb))}" '
                 f'data-big="{escape(_url(plain or plain_thumb))}" alt="{escape(alt)} without overlay">'
                 if plain_thumb else "")
    links = f'<a href="{escape(_url(full))}">overlay</a>'
    if plain:
        links += f' · <a href="{escape(_url(plain))}">plain</a>'
    return (f'<td class="pic {kind}"><a class=thumb data-kind="{kind}" href="{escape(_url(full))}" '
            f'data-full="{escape(_url(full))}" data-plain="{escape(_url(plain))}" title="hover: without overlay; '
            f'click: viewer">'
            f'<img class=ov src="{escape(_url(thumb))}" data-thumb="{escape(_url(thumb))}" '
            f'data-big="{escape(_url(full))}" '
            f'alt="{escape(alt)}">{plain_img}</a>'
            f'<div class=links>{links}</div></td>')


DEMO_MARK = "demo model — not for research"


def _model_cell(entry: dict) -> str:
    """Model tag, task, QC date, the demo mark, and the command line and parameters of the run."""
    model, task, created = entry.get("model_tag") or "", entry.get("task") or "", entry.get("created") or ""
    demo = (f'<div><span class="tag demo" title="{escape(entry.get("model_description") or DEMO_MARK)}">'
            f'{DEMO_MARK}</span></div>' if entry.get("model_demo") else "")
    command, params = entry.get("command"), entry.get("parameters") or {}
    run = ""
    if command:
        where = f' (in {entry["cwd"]})' if entry.get("cwd") else ""
        run += f'<code class=cmd title="{escape(command + where)}">{escape(command)}</code>'
    if params:
        items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v if isinstance(v, str) else json.dumps(v))}</dd>"
                        for k, v in params.items())
        run += f"<details class=params><summary>parameters</summary><dl>{items}</dl></details>"
    return (f'<td class=model data-sort="{escape(model)}">{escape(model)}{demo}<div class=small>{escape(task)}</div>'
            f'<div class=small title="QC made {escape(created)}">'
            f'{escape(created.replace("T", " ")[:16])}</div>{run}</td>')


def _review_cell(review_key: str) -> str:
    return (f'<td class=review data-sort=""><select aria-label="review" data-key="{escape(review_key)}">'
            f'<option value="">–</option><option value="pass">pass</option><option value="fail">fail</option>'
            f'<option value="unsure">unsure</option></select>'
            f'<input class=note type=text aria-label="review note" placeholder="note" size=10></td>')


def row(entry: dict, order: int, with_analysis: bool = False, with_session: bool = True) -> str:
    stats = entry.get("stats") or {}
    flags = list(entry.get("flags") or [])
    subject = entry.get("subject") or ""
    control = ' <span class="tag control" title="healthy control in participants.tsv">control</span>' \
        if entry.get("is_control") else ""
    vols = stats.get("lesion_volumes_mm3") or []
    vol_title = ", ".join(f"lesion {i}: {v:g} mm³" for i, v in enumerate(vols[:20], 1))
    if len(vols) > 20:
        vol_title += ", …"
    flag_html = " ".join(
        f'<span class="flag {FLAG_SEVERITY.get(f, "warn")}" title="{escape(FLAG_DESCRIPTIONS.get(f, f))}">'
        f'{escape(f)}</span>'
        for f in flags) or '<span class=none>none</span>'
    edges = stats.get("cord_fov_edges") or []
    if edges and "cord-at-fov-edge" in flags:
        flag_html += f' <span class=small>({escape("/".join(edges))})</span>'
    flag_html += checks_line(entry.get("checks") or {})
    rank = triage_rank(entry, FLAG_SEVERITY)
    if rank == 0:
        flag_html = '<div class="flag bad unusable">likely unusable</div>' + flag_html
    model = entry.get("model_tag") or ""
    created = entry.get("created") or ""
    review_key = f"{entry.get('id')}@{created}"
    dataset = entry.get("dataset") or ""
    cells = [
        f'<td data-sort="{escape(subject)}">{escape(subject or "–")}{control}'
        f'<div class=small>{escape(dataset)}</div></td>',
        f'<td data-sort="{escape(entry.get("session"))}">{escape(entry.get("session") or "–")}</td>',
        f'<td data-sort="{escape(entry.get("file"))}" class=file title="{escape(entry.get("image_path"))}">'
        f'{escape(entry.get("file"))}<div class=small>{escape(entry.get("orientation"))} '
        f'{escape("×".join(str(s) for s in entry.get("shape") or []))}</div></td>',
        _model_cell(entry),
        _thumb_cell(entry, "sagittal"),
        _thumb_cell(entry, "axial"),
        f'<td class=num data-sort="{escape(stats.get("cord_volume_mm3"))}">{_num(stats.get("cord_volume_mm3"))}</td>',
        f'<td class=num data-sort="{escape(stats.get("lesion_count"))}">{_num(stats.get("lesion_count"))}</td>',
        f'<td class=num data-sort="{escape(stats.get("lesion_volume_mm3"))}" title="{escape(vol_title)}">'
        f'{"0" if stats.get("lesion_count") == 0 else _num(stats.get("lesion_volume_mm3"))}</td>',
        f'<td class=flags data-sort="{3 - rank} {len(flags):02d} {escape(" ".join(flags))}">{flag_html}</td>',
        _review_cell(review_key),
    ]
    if with_analysis:
        cells[9:9] = lesion_columns.cells(entry)
    if not with_session:
        del cells[1]
    data = {"order": order, "id": entry.get("id"), "flags": " ".join(flags), "dataset": dataset,
            "subject": subject, "session": entry.get("session"), "file": entry.get("file"), "model": model,
            "lesions": stats.get("lesion_count"), "lesion-volume": stats.get("lesion_volume_mm3"),
            "path": entry.get("image_path"), "task": entry.get("task"), "created": created,
            "demo": "1" if entry.get("model_demo") else "", "command": entry.get("command"), "rank": rank}
    attrs = " ".join(f'data-{k}="{escape(v)}"' for k, v in data.items())
    return f"<tr class=\"scan{' demo' if entry.get('model_demo') else ''}\" {attrs}>" + "".join(cells) + "</tr>"


def flag_options(entries: List[dict]) -> str:
    counts: Dict[str, int] = {}
    for e in entries:
        for f in e.get("flags") or []:
            counts[f] = counts.get(f, 0) + 1
    flagged = sum(1 for e in entries if e.get("flags"))
    options = [("all", f"all scans ({len(entries)})"), ("any", f"any flag ({flagged})"),
               ("none", f"no flag ({len(entries) - flagged})")]
    known = list(FLAG_DESCRIPTIONS) + sorted(set(counts) - set(FLAG_DESCRIPTIONS))
    options += [(f, f"{f} ({counts.get(f, 0)})") for f in known]
    return "".join(f'<option value="{escape(v)}">{escape(t)}</option>' for v, t in options)


def entry_titles(entries: List[dict]) -> Dict[str, str]:
    """What the report calls the structure and the finding: the entries' own names when they all agree."""
    seen = {json.dumps(e.get("titles") or {"cord": "cord", "lesion": "lesion"}, sort_keys=True) for e in entries}
    return json.loads(seen.pop()) if len(seen) == 1 else {"cord": "cord", "lesion": "lesion"}
