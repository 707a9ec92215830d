"""The QC report's review CSV in headless Chromium: exported cells a spreadsheet would run as formulas are
neutralised (leading apostrophe, taken off again on import); a review row whose id is a prototype name
(``__proto__``, ``constructor``, ...) or a file with malformed quoting gives one message and imports nothing
wrong."""
from __future__ import annotations

import csv
import io

import nibabel as nib
import numpy as np
import pytest

from sct_task_sciseg import qc
from sct_task_sciseg.qc import folder as qc_folder
from sct_task_sciseg.tasks import SCISEG
from sct_task_sciseg.demo.phantom import make_phantom
from test_qc import CHROMIUM_FLAGS, READY, STATE, _export, _import, _rate

FILE = "@SUM(1)_T2w.nii.gz"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("qc_csv")
    for n, subject in enumerate(("sub-01", "sub-02")):
        img, labels = make_phantom(n)
        lab = np.asarray(labels.dataobj)
        masks = {"sc": nib.Nifti1Image((lab >= 1).astype(np.uint8), img.affine),
                 "lesion": nib.Nifti1Image((lab == 2).astype(np.uint8), img.affine)}
        path = base / subject / FILE
        path.parent.mkdir()
        nib.save(img, str(path))
        qc.write_qc(base / "qc", path, img, masks, model_tag="r1", task_name="seg_sc_lesion_t2w_sci",
                    roles=qc.Roles.of(SCISEG.labels), dataset="=2+3", subject=subject)
    return base / "qc"


@pytest.fixture
def browser(report, tmp_path):
    from cdp_pipe import open_chromium

    b = open_chromium(tmp_path, CHROMIUM_FLAGS)
    (tmp_path / "downloads").mkdir()
    try:
        b.send("Browser.setDownloadBehavior", {"behavior": "allowAndName", "downloadPath": str(tmp_path / "downloads"),
                                               "eventsEnabled": True})
        b.open((report / "index.html").as_uri(), READY)
        yield b
    finally:
        b.close()


def test_exported_cells_that_a_spreadsheet_would_run_are_neutralised(browser, tmp_path):
    notes = {"sub-01": "-1 level off", "sub-02": "\t+cmd|' /C calc'!A0"}
    for subject, note in notes.items():
        _rate(browser, subject, "pass", note)
    text = _export(browser, tmp_path / "downloads")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["dataset"] for r in table] == ["'=2+3"] * 2
    assert [r["file"] for r in table] == [f"'{FILE}"] * 2
    assert [r["note"] for r in table] == ["'-1 level off", "'\t+cmd|' /C calc'!A0"]
    assert all(not r[k] or r[k][0] not in "=+-@\t\r" for r in table for k in r)
    rated = browser.js(STATE)
    browser.js("localStorage.clear()")
    browser.reload(READY)
    (tmp_path / "r.csv").write_text(text, encoding="utf-8")
    got = _import(browser, tmp_path / "r.csv")
    assert (got["imported"], got["unmatched"]) == (2, 0), got
    assert browser.js(STATE) == rated  # the apostrophes are taken off again: the notes come back as typed


def _csv(rows) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "image_path", "file", "review", "note"])
    w.writerows(rows)
    return out.getvalue()


def test_prototype_named_ids_import_nothing_and_say_so(browser, tmp_path):
    before = browser.js(STATE)
    names = ["__proto__", "constructor", "toString", "hasOwnProperty", "__defineGetter__"]
    (tmp_path / "p.csv").write_text(_csv([[n, n, n, "fail", "x"] for n in names]))
    got = _import(browser, tmp_path / "p.csv")
    assert (got["imported"], got["unmatched"]) == (0, len(names)), got
    assert got["text"] == f"imported 0 review(s), {len(names)} not matched"
    assert browser.js(STATE) == before
    assert browser.js("Object.prototype.length === undefined && typeof ({}).constructor === 'function'")


@pytest.mark.parametrize("text, problem", [
    ('id,review,note\nx,pass,ok\n"unclosed,fail,bad\ny,pass,ok\n', "a quoted cell is never closed (line 3)"),
    ('id,review,note\nx,pass,"a"b\n', "text after a closing quote (line 2)"),
    ('id,review,note\nx,pa"ss,ok\n', "a quote inside an unquoted cell (line 2)"),
    ('id,review\nx,pass,extra,cells\n', "more cells than the header (line 2)"),
])
def test_malformed_quoting_gives_one_message_and_imports_nothing(browser, tmp_path, report, text, problem):
    first = qc_folder.load_entries(report)[0]["id"]  # a real row: a partial import would rate it
    (tmp_path / "m.csv").write_text(text.replace("x,", f"{first},"))
    before = browser.js(STATE)
    got = _import(browser, tmp_path / "m.csv")
    assert got["imported"] == -1 and got["text"] == f"m.csv: malformed CSV: {problem}; nothing imported", got
    assert browser.js(STATE) == before
