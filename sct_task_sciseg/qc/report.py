"""The QC index: a self-contained ``DIR/index.html`` rendered from the entries of a QC folder (layout and
parallel writes: :mod:`sct_task_sciseg.qc.folder`; the rows: :mod:`sct_task_sciseg.qc.index_rows`).

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

import datetime as _dt
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from . import lesion_columns
from .folder import INDEX, LOCK, LOCK_TIMEOUT_S, load_entries, write_entry, write_text_atomic
from .index_rows import DEMO_MARK, FLAG_DESCRIPTIONS, FLAG_SEVERITY, escape, entry_titles, flag_options, row
from .triage import triage_rank

ASSETS = Path(__file__).resolve().parent / "assets"


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


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


def _columns(titles: Dict[str, str], with_analysis: bool = False, with_session: bool = True) -> List[tuple]:
    cord, lesion = titles["cord"], titles["lesion"]
    names = {"cord_volume": (f"{cord.capitalize()} mm³", f"{cord} volume ({lesion} included)"),
             "lesion_count": (f"{lesion.capitalize()}s", f"number of {lesion}s (3-D connected components, "
                              "18-connectivity as in sct_analyze_lesion)"),
             "lesion_volume": (f"{lesion.capitalize()} mm³", f"total {lesion} volume (hover a value for each)")}
    cols = [(k, names[k][0], t, names[k][1]) if k in names else (k, h, t, tip) for k, h, t, tip in COLUMNS]
    if with_analysis:
        cols[9:9] = lesion_columns.COLUMNS
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
<label>Flag <select id=flag-filter>{flag_options(entries)}</select></label>
<label>Review <select id=review-filter><option value=all>all</option><option value=todo>not reviewed</option>
<option value=pass>pass</option><option value=fail>fail</option><option value=unsure>unsure</option></select></label>
<label>Search <input id=search type=search placeholder="subject, file…" size=14></label>
<label>Pictures <select id=pic-size title="remembered by this browser">{sizes}</select></label>
<button id=export type=button title="download the table with your reviews">Export reviews (CSV)</button>
<label class=button title="reviews from a CSV exported by this page (matched by id, else by image path)">Import
reviews (CSV)<input id=import type=file accept=".csv,text/csv" hidden></label> <span id=import-result></span>
{demo_note}
<span class=muted><span class=sw style="background:#ff0000"></span>{escape(titles["cord"])}
<span class=sw style="background:#00ffff"></span>{escape(titles["lesion"])} · click a header to sort · hover a picture: no overlay ·
click it: viewer</span>
</div>"""


def render_html(entries: List[dict], title: str = "SCIseg quality control") -> str:
    """The whole page for ``entries`` (no external resource: CSS and JavaScript inline)."""
    titles = entry_titles(entries)
    with_analysis = any(e.get("analysis") for e in entries)
    with_session = any(e.get("session") for e in entries)
    heads = "".join(f'<th data-key="{k}" data-type="{t}" title="{escape(tip)}" scope=col>{escape(h)}</th>'
                    for k, h, t, tip in _columns(titles, with_analysis, with_session))
    # flagged first, stable otherwise; data-order keeps the entries' order for the export
    shown = sorted(enumerate(entries), key=lambda ie: triage_rank(ie[1], FLAG_SEVERITY))
    rows = "\n".join(row(e, i, with_analysis, with_session) for i, e in shown)
    legend_flags = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in FLAG_DESCRIPTIONS.items())
    generated = _dt.datetime.now().astimezone().isoformat(timespec="seconds").replace("T", " ")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{escape(title)}</title>
<style>{_asset("report.css")}</style>
</head>
<body data-rows="{len(entries)}">
<header>
<h1>{escape(title)}</h1>
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
<p class=muted>Generated {escape(generated)}.</p></details>
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
    write_text_atomic(path, render_html(load_entries(qc_dir)))
    return path


def add_qc_entry(qc_dir, entry: dict) -> Path:
    """Write ``entry`` as ``DIR/entries/<id>.json`` (atomically; an existing entry with that id is replaced),
    then re-render ``DIR/index.html`` under the folder's file lock. Returns the entry's path."""
    from filelock import FileLock

    qc_dir = Path(qc_dir)
    path = write_entry(qc_dir, entry)
    with FileLock(str(qc_dir / LOCK), timeout=LOCK_TIMEOUT_S):
        render_index(qc_dir)
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
