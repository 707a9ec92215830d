"""The QC index: one JSON entry per scan under ``DIR/entries/`` and a self-contained ``DIR/index.html``.

Layout of a QC folder::

    DIR/index.html                      the table (open it from disk: no server, no external resource)
    DIR/entries/<entry id>.json         one file per processed scan (written atomically)
    DIR/pictures/<entry id>/*.png       the pictures of that scan (see sct_task_sciseg.qc)
    DIR/.index.lock                     file lock serialising the re-rendering of index.html

Parallel runs can share ``DIR``: each writes only its own entry (temporary file, then ``os.replace``), then
re-renders ``index.html`` from *all* entries under a :class:`filelock.FileLock`. Whoever renders last has seen
every entry written before it took the lock, so no row is ever lost and no file is ever half written.

The page lists flagged scans first (:func:`.triage.triage_rank`: likely unusable, then a flag to check, then a
warning, then none; the export keeps the dataset/subject order). Click a column header to sort (again to reverse;
Flags sorts by that rank), filter by flag or review status, hover a picture
to see it without overlay, click it for the full-size viewer (keys: ``o`` overlay on/off, ``s``/``a`` sagittal or
axial, arrows previous/next scan, ``p``/``f``/``u`` review pass/fail/unsure, Esc close). Picture size, a setting
the browser remembers: small, medium, large (the thumbnails, at most 110/170/260 px high and scaled down so the
table fits the window: every column and flag visible at 1440 px) or x-large (the full mosaics, 400 px high,
loaded as they scroll into view; the page may then scroll sideways). Each row shows the command line and
parameters that made it, and
a "demo model" mark when the model is a demo release (:func:`sct_task_sciseg.qc.entry.model_note`). Reviews
(verdict and note) are kept in the browser (localStorage), exported as CSV and imported from that CSV (rows
matched by entry id, else by image path, else by dataset/subject/session/file). Sort, filter and picture size
live in the URL hash (``#sort=lesion_volume&dir=desc&flag=any&pics=m``), so a view can be bookmarked.

``python -m sct_task_sciseg.qc.report DIR`` re-renders ``DIR/index.html`` from the entries. The page's CSS and
JavaScript live in ``assets/`` beside this module and are inlined into every page.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import html
import json
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set
from urllib.parse import quote

from ..io.atomic import atomic_write
from . import report_analysis
from .plausibility import FLAGS as PLAUSIBILITY_FLAGS
from .plausibility import SEVERITY as PLAUSIBILITY_SEVERITY
from .triage import checks_line, triage_rank

ASSETS = Path(__file__).resolve().parent / "assets"
ENTRIES = "entries"
INDEX = "index.html"
LOCK = ".index.lock"
LOCK_TIMEOUT_S = 300

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

CONTROL_COLUMNS = ("group", "pathology", "diagnosis", "condition", "status", "cohort", "disease", "category",
                   "population", "subject_type", "participant_type", "clinical_group", "health_status", "type")
CONTROL_VALUES = {"hc", "control", "controls", "healthy", "healthy control", "healthy controls", "healthy_control",
                  "healthy-control", "healthycontrol", "healthy volunteer", "healthy volunteers", "healthy subject",
                  "ctrl", "nc", "normal control", "normal", "hv", "volunteer", "td"}


# ------------------------------------------------------------------------------------------ participants
def normalise_subject(subject: str) -> str:
    """``'sub-01'`` and ``'01'`` → ``'01'``."""
    s = str(subject).strip()
    return s[4:] if s.startswith("sub-") else s


def read_participants_controls(bids_root) -> Set[str]:
    """Participant ids (as written, e.g. ``sub-01``) that ``participants.tsv`` lists as healthy controls.

    The group is read from the first column named like ``group``/``pathology``/``diagnosis``/… (case-insensitive)
    whose values include a control label (HC, control, healthy, healthy control, …). No file, no such column:
    an empty set.
    """
    path = Path(bids_root) / "participants.tsv"
    if not path.is_file():
        return set()
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()
    if not rows:
        return set()
    columns = [c for c in rows[0].keys() if c is not None]
    id_col = next((c for c in columns if c.strip().lower() == "participant_id"), columns[0] if columns else None)
    lowered = {c.strip().lower(): c for c in columns}
    candidates = [lowered[n] for n in CONTROL_COLUMNS if n in lowered]
    candidates += [c for c in columns if c not in candidates and c != id_col
                   and re.search(r"group|patholog|diagnos|cohort", c, re.I)]
    for col in candidates:
        ids = {str(r.get(id_col) or "").strip() for r in rows
               if str(r.get(col) or "").strip().lower() in CONTROL_VALUES}
        ids.discard("")
        if ids:
            return ids
    return set()


# ----------------------------------------------------------------------------------------------- entries
def entry_id(dataset: Optional[str], subject: Optional[str], session: Optional[str], stem: str, task: str,
             model_tag: str) -> str:
    """A file-name-safe id, unique per (dataset, subject, session, file, task, model tag)."""
    parts = [dataset, subject, session, stem, task, model_tag]
    readable = "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", str(p)).strip("-.") for p in parts[:4] if p)
    digest = hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:10]
    return f"{readable[:80] or 'scan'}_{digest}"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _entry_problem(entry: object) -> Optional[str]:
    """Why ``entry`` cannot be shown in the report (not a dict with an id, or a field the page cannot render)."""
    if not isinstance(entry, dict) or not entry.get("id"):
        return "not a QC entry (a JSON object with an id)"
    try:
        _row(entry, 0, True)
        _titles([entry])
        _flag_options([entry])
    except Exception as exc:  # noqa: BLE001 - any field of a foreign or edited file may be wrong
        return f"{type(exc).__name__}: {exc}"
    return None


def load_entries(qc_dir) -> List[dict]:
    """Every usable entry of ``qc_dir``, in a stable order; an unreadable or malformed file is reported (one
    warning line) and left out, so it never blocks the report or a segmentation."""
    entries = []
    for path in sorted((Path(qc_dir) / ENTRIES).glob("*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            problem = _entry_problem(entry)
        except (OSError, ValueError) as exc:
            problem = f"unreadable ({exc})"
        if problem is None:
            entries.append(entry)
        else:
            print(f"sciseg: warning: {path}: malformed QC entry, left out of the report: {problem}", file=sys.stderr)
    entries.sort(key=lambda e: tuple(str(e.get(k) or "") for k in ("dataset", "subject", "session", "file",
                                                                        "task", "model_tag")))
    return entries


def add_qc_entry(qc_dir, entry: dict) -> Path:
    """Write ``entry`` as ``DIR/entries/<id>.json`` (atomically; an existing entry with that id is replaced),
    then re-render ``DIR/index.html`` under the folder's file lock. Returns the entry's path."""
    from filelock import FileLock

    qc_dir = Path(qc_dir)
    if not entry.get("id"):
        raise ValueError("a QC entry needs an 'id'")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", entry["id"]) or entry["id"].startswith("."):
        raise ValueError(f"QC entry id {entry['id']!r} is not a safe file name")
    path = qc_dir / ENTRIES / f"{entry['id']}.json"
    _atomic_write(path, json.dumps(entry, indent=1, sort_keys=True, default=str))
    with FileLock(str(qc_dir / LOCK), timeout=LOCK_TIMEOUT_S):
        render_index(qc_dir)
    return path


# -------------------------------------------------------------------------------------------------- HTML
def _e(value) -> str:
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
    plain_img = (f'<img class=pl src="{_e(_url(plain_thumb))}" data-thumb="{_e(_url(plain_thumb))}" '
                 f'data-big="{_e(_url(plain or plain_thumb))}" alt="{_e(alt)} without overlay">'
                 if plain_thumb else "")
    links = f'<a href="{_e(_url(full))}">overlay</a>'
    if plain:
        links += f' · <a href="{_e(_url(plain))}">plain</a>'
    return (f'<td class="pic {kind}"><a class=thumb data-kind="{kind}" href="{_e(_url(full))}" '
            f'data-full="{_e(_url(full))}" data-plain="{_e(_url(plain))}" title="hover: without overlay; '
            f'click: viewer">'
            f'<img class=ov src="{_e(_url(thumb))}" data-thumb="{_e(_url(thumb))}" data-big="{_e(_url(full))}" '
            f'alt="{_e(alt)}">{plain_img}</a>'
            f'<div class=links>{links}</div></td>')


DEMO_MARK = "demo model — not for research"


def _model_cell(entry: dict) -> str:
    """Model tag, task, QC date, the demo mark, and the command line and parameters of the run."""
    model, task, created = entry.get("model_tag") or "", entry.get("task") or "", entry.get("created") or ""
    demo = (f'<div><span class="tag demo" title="{_e(entry.get("model_description") or DEMO_MARK)}">'
            f'{DEMO_MARK}</span></div>' if entry.get("model_demo") else "")
    command, params = entry.get("command"), entry.get("parameters") or {}
    run = ""
    if command:
        where = f' (in {entry["cwd"]})' if entry.get("cwd") else ""
        run += f'<code class=cmd title="{_e(command + where)}">{_e(command)}</code>'
    if params:
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v if isinstance(v, str) else json.dumps(v))}</dd>"
                        for k, v in params.items())
        run += f"<details class=params><summary>parameters</summary><dl>{items}</dl></details>"
    return (f'<td class=model data-sort="{_e(model)}">{_e(model)}{demo}<div class=small>{_e(task)}</div>'
            f'<div class=small title="QC made {_e(created)}">{_e(created.replace("T", " ")[:16])}</div>{run}</td>')


def _review_cell(review_key: str) -> str:
    return (f'<td class=review data-sort=""><select aria-label="review" data-key="{_e(review_key)}">'
            f'<option value="">–</option><option value="pass">pass</option><option value="fail">fail</option>'
            f'<option value="unsure">unsure</option></select>'
            f'<input class=note type=text aria-label="review note" placeholder="note" size=10></td>')


def _row(entry: dict, order: int, with_analysis: bool = False, with_session: bool = True) -> str:
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
        f'<span class="flag {FLAG_SEVERITY.get(f, "warn")}" title="{_e(FLAG_DESCRIPTIONS.get(f, f))}">{_e(f)}</span>'
        for f in flags) or '<span class=none>none</span>'
    edges = stats.get("cord_fov_edges") or []
    if edges and "cord-at-fov-edge" in flags:
        flag_html += f' <span class=small>({_e("/".join(edges))})</span>'
    flag_html += checks_line(entry.get("checks") or {})
    rank = triage_rank(entry, FLAG_SEVERITY)
    if rank == 0:
        flag_html = '<div class="flag bad unusable">likely unusable</div>' + flag_html
    model = entry.get("model_tag") or ""
    created = entry.get("created") or ""
    review_key = f"{entry.get('id')}@{created}"
    dataset = entry.get("dataset") or ""
    cells = [
        f'<td data-sort="{_e(subject)}">{_e(subject or "–")}{control}'
        f'<div class=small>{_e(dataset)}</div></td>',
        f'<td data-sort="{_e(entry.get("session"))}">{_e(entry.get("session") or "–")}</td>',
        f'<td data-sort="{_e(entry.get("file"))}" class=file title="{_e(entry.get("image_path"))}">'
        f'{_e(entry.get("file"))}<div class=small>{_e(entry.get("orientation"))} '
        f'{_e("×".join(str(s) for s in entry.get("shape") or []))}</div></td>',
        _model_cell(entry),
        _thumb_cell(entry, "sagittal"),
        _thumb_cell(entry, "axial"),
        f'<td class=num data-sort="{_e(stats.get("cord_volume_mm3"))}">{_num(stats.get("cord_volume_mm3"))}</td>',
        f'<td class=num data-sort="{_e(stats.get("lesion_count"))}">{_num(stats.get("lesion_count"))}</td>',
        f'<td class=num data-sort="{_e(stats.get("lesion_volume_mm3"))}" title="{_e(vol_title)}">'
        f'{"0" if stats.get("lesion_count") == 0 else _num(stats.get("lesion_volume_mm3"))}</td>',
        f'<td class=flags data-sort="{3 - rank} {len(flags):02d} {_e(" ".join(flags))}">{flag_html}</td>',
        _review_cell(review_key),
    ]
    if with_analysis:
        cells[9:9] = report_analysis.cells(entry)
    if not with_session:
        del cells[1]
    data = {"order": order, "id": entry.get("id"), "flags": " ".join(flags), "dataset": dataset,
            "subject": subject, "session": entry.get("session"), "file": entry.get("file"), "model": model,
            "lesions": stats.get("lesion_count"), "lesion-volume": stats.get("lesion_volume_mm3"),
            "path": entry.get("image_path"), "task": entry.get("task"), "created": created,
            "demo": "1" if entry.get("model_demo") else "", "command": entry.get("command"), "rank": rank}
    attrs = " ".join(f'data-{k}="{_e(v)}"' for k, v in data.items())
    return f"<tr class=\"scan{' demo' if entry.get('model_demo') else ''}\" {attrs}>" + "".join(cells) + "</tr>"


COLUMNS = [  # key, header, type (num/text/none), tooltip
    ("subject", "Subject", "text", "subject (and dataset below)"),
    ("session", "Session", "text", ""),
    ("file", "File", "text", "input image (hover for its path)"),
    ("model", "Model", "text", "model release, task, QC date, command line and parameters"),
    ("sagittal", "Sagittal", "none", "curved sagittal slice through the cord"),
    ("axial", "Axial", "none", "axial slices along the cord"),
    ("cord_volume", "Cord mm³", "num", "cord volume (lesion included)"),
    ("lesion_count", "Lesions", "num", "number of lesions (3-D connected components, 18-connectivity as in sct_analyze_lesion)"),
    ("lesion_volume", "Lesion mm³", "num", "total lesion volume (hover a value for each lesion)"),
    ("flags", "Flags", "text", "what a reviewer should look at"),
    ("review", "Review", "review", "your verdict and note, stored in this browser (export/import as CSV)"),
]


def _flag_options(entries: List[dict]) -> str:
    counts: Dict[str, int] = {}
    for e in entries:
        for f in e.get("flags") or []:
            counts[f] = counts.get(f, 0) + 1
    flagged = sum(1 for e in entries if e.get("flags"))
    options = [("all", f"all scans ({len(entries)})"), ("any", f"any flag ({flagged})"),
               ("none", f"no flag ({len(entries) - flagged})")]
    known = list(FLAG_DESCRIPTIONS) + sorted(set(counts) - set(FLAG_DESCRIPTIONS))
    options += [(f, f"{f} ({counts.get(f, 0)})") for f in known]
    return "".join(f'<option value="{_e(v)}">{_e(t)}</option>' for v, t in options)


def _titles(entries: List[dict]) -> Dict[str, str]:
    """What the report calls the structure and the finding: the entries' own names when they all agree."""
    seen = {json.dumps(e.get("titles") or {"cord": "cord", "lesion": "lesion"}, sort_keys=True) for e in entries}
    return json.loads(seen.pop()) if len(seen) == 1 else {"cord": "cord", "lesion": "lesion"}


def _columns(titles: Dict[str, str], with_analysis: bool = False, with_session: bool = True) -> List[tuple]:
    cord, lesion = titles["cord"], titles["lesion"]
    names = {"cord_volume": (f"{cord.capitalize()} mm³", f"{cord} volume ({lesion} included)"),
             "lesion_count": (f"{lesion.capitalize()}s", f"number of {lesion}s (3-D connected components, "
                              "18-connectivity as in sct_analyze_lesion)"),
             "lesion_volume": (f"{lesion.capitalize()} mm³", f"total {lesion} volume (hover a value for each)")}
    cols = [(k, names[k][0], t, names[k][1]) if k in names else (k, h, t, tip) for k, h, t, tip in COLUMNS]
    if with_analysis:
        cols[9:9] = report_analysis.COLUMNS
    if not with_session:  # no scan has a session: no column of dashes
        del cols[1]
    return cols


PIC_SIZES = (("s", "small"), ("m", "medium"), ("l", "large"), ("xl", "x-large: full mosaics"))


def _toolbar(entries: List[dict], titles: Dict[str, str]) -> str:
    flagged = sum(1 for e in entries if e.get("flags"))
    demo = sum(1 for e in entries if e.get("model_demo"))
    demo_note = (f'<span class="tag demo" id=demo-count>{demo} made with a {DEMO_MARK}</span>' if demo else "")
    sizes = "".join(f'<option value="{v}">{t}</option>' for v, t in PIC_SIZES)
    return f"""<div class=bar>
<span><b>{len(entries)}</b> scan{'s' if len(entries) != 1 else ''} · <b>{flagged}</b> flagged · <span id=shown></span>
<span id=missing class=muted></span></span>
<label>Flag <select id=flag-filter>{_flag_options(entries)}</select></label>
<label>Review <select id=review-filter><option value=all>all</option><option value=todo>not reviewed</option>
<option value=pass>pass</option><option value=fail>fail</option><option value=unsure>unsure</option></select></label>
<label>Search <input id=search type=search placeholder="subject, file…" size=14></label>
<label>Pictures <select id=pic-size title="remembered by this browser">{sizes}</select></label>
<button id=export type=button title="download the table with your reviews">Export reviews (CSV)</button>
<label class=button title="reviews from a CSV exported by this page (matched by id, else by image path)">Import
reviews (CSV)<input id=import type=file accept=".csv,text/csv" hidden></label> <span id=import-result></span>
{demo_note}
<span class=muted><span class=sw style="background:#ff0000"></span>{_e(titles["cord"])}
<span class=sw style="background:#00ffff"></span>{_e(titles["lesion"])} · click a header to sort · hover a picture: no overlay ·
click it: viewer</span>
</div>"""


def render_html(entries: List[dict], title: str = "SCIseg quality control") -> str:
    """The whole page for ``entries`` (no external resource: CSS and JavaScript inline)."""
    titles = _titles(entries)
    with_analysis = any(e.get("analysis") for e in entries)
    with_session = any(e.get("session") for e in entries)
    heads = "".join(f'<th data-key="{k}" data-type="{t}" title="{_e(tip)}" scope=col>{_e(h)}</th>'
                    for k, h, t, tip in _columns(titles, with_analysis, with_session))
    # flagged first, stable otherwise; data-order keeps the entries' order for the export
    shown = sorted(enumerate(entries), key=lambda ie: triage_rank(ie[1], FLAG_SEVERITY))
    rows = "\n".join(_row(e, i, with_analysis, with_session) for i, e in shown)
    legend_flags = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in FLAG_DESCRIPTIONS.items())
    generated = _dt.datetime.now().astimezone().isoformat(timespec="seconds").replace("T", " ")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{_e(title)}</title>
<style>{_asset("report.css")}</style>
</head>
<body data-rows="{len(entries)}">
<header>
<h1>{_e(title)}</h1>
{_toolbar(entries, titles)}
</header>
<table id=scans>
<thead><tr>{heads}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
<details style="margin:0 16px 24px"><summary>Flags and keys</summary><ul>{legend_flags}</ul>
<p>Viewer keys: <kbd>o</kbd>/<kbd>space</kbd> overlay on/off · <kbd>s</kbd> sagittal · <kbd>a</kbd> axial ·
<kbd>←</kbd>/<kbd>→</kbd> previous/next scan · <kbd>p</kbd> pass · <kbd>f</kbd> fail · <kbd>u</kbd> unsure ·
<kbd>Esc</kbd> close. Reviews stay in this browser; export them as CSV, import that CSV here or in
another browser.</p>
<p class=muted>Generated {_e(generated)}.</p></details>
{_asset("viewer.html")}
<script>{_asset("report.js")}</script>
</body>
</html>
"""


def render_index(qc_dir) -> Path:
    """(Re-)write ``DIR/index.html`` from all entries (atomically). Call under the folder lock, or use
    :func:`add_qc_entry` / :func:`rebuild_index`."""
    qc_dir = Path(qc_dir)
    path = qc_dir / INDEX
    _atomic_write(path, render_html(load_entries(qc_dir)))
    return path


def rebuild_index(qc_dir) -> Path:
    """:func:`render_index` under the folder's file lock."""
    from filelock import FileLock

    qc_dir = Path(qc_dir)
    qc_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(qc_dir / LOCK), timeout=LOCK_TIMEOUT_S):
        return render_index(qc_dir)


def main(argv: Optional[Iterable[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m sct_task_sciseg.qc.report QC_DIR   (re-renders QC_DIR/index.html)")
        return 0 if args and args[0] in ("-h", "--help") else 2
    print(rebuild_index(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
