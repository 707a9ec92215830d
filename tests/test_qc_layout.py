"""The QC report of the shared volumes (with -analyze) in headless Chromium at 1440 px: every column and every
flag inside the window without horizontal scrolling, flagged rows first, the T1w scan marked unusable.

``SCISEG_WRITE_QC_EXAMPLE=1`` also writes the screenshot to docs/qc-example.png (the README's picture).
"""
from __future__ import annotations

import base64
import os

import pytest

from conftest import DATA, REPO, needs_data, run_cli

pytestmark = needs_data

WIDTH = 1440
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
         f"--window-size={WIDTH},1000"]
READY = "document.body && document.body.dataset.ready === '1'"
BOXES = """(function () {
  function box(e) { var r = e.getBoundingClientRect(); return [r.left, r.right, r.width]; }
  return {scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
          heads: Array.prototype.map.call(document.querySelectorAll('#scans thead th'),
                                          function (h) { return [h.dataset.key].concat(box(h)); }),
          flags: Array.prototype.map.call(document.querySelectorAll('#scans td .flag'),
                                          function (f) { return [f.textContent].concat(box(f)); }),
          rows: Array.prototype.map.call(document.querySelectorAll('tr.scan'),
                                         function (r) { return [r.dataset.file, r.dataset.flags]; }),
          pics: Array.prototype.map.call(document.querySelectorAll('tr.scan td.pic img.ov'),
                                         function (i) { return [i.naturalWidth].concat(box(i)); })};
})()"""


def test_report_fits_1440_px_with_every_column_and_flag(installed_model, tmp_path):
    from cdp_pipe import find_chromium, open_chromium

    if find_chromium() is None:  # before the run that makes the report
        pytest.skip("Chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)")
    qc = tmp_path / "qc"
    inputs = [DATA / "t2" / "t2_fake_lesion.nii.gz", DATA / "t2" / "t2.nii.gz", DATA / "t1" / "t1w.nii.gz",
              DATA / "t2s" / "t2s.nii.gz"]
    r = run_cli("-i", *inputs, "-o", f"{tmp_path / 'out'}/", "-qc", qc, "-analyze", "-threads", "2",
                env={"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    b = open_chromium(tmp_path, FLAGS)
    try:
        b.send("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": 1000, "deviceScaleFactor": 1,
                                                      "mobile": False}, page=True)
        b.open((qc / "index.html").as_uri(), READY)
        got = b.js(BOXES)
        shot = base64.b64decode(b.send("Page.captureScreenshot", {"format": "png"}, page=True)["data"])
    finally:
        b.close()
    (tmp_path / "qc-1440.png").write_bytes(shot)
    if os.environ.get("SCISEG_WRITE_QC_EXAMPLE"):
        (REPO / "docs" / "qc-example.png").write_bytes(shot)
    assert got["scroll"] <= WIDTH and got["client"] == WIDTH, got["scroll"]
    keys = [h[0] for h in got["heads"]]
    assert {"flags", "review", "cord_volume", "lesion_count", "axial", "sagittal"} <= set(keys)
    for key, left, right, width in got["heads"]:
        assert 0 <= left and right <= WIDTH and width > 20, (key, left, right)
    assert got["flags"], "no flag shown"
    for text, left, right, width in got["flags"]:
        assert 0 <= left and right <= WIDTH and width > 0, (text, left, right)
    # the T1w volume first (likely unusable), the T2w/T2*w scans unflagged
    assert got["rows"][0][0] == "t1w.nii.gz" and "cord-discontinuous" in got["rows"][0][1]
    assert {f for f, flags in got["rows"][1:] if flags} <= {"t2_fake_lesion.nii.gz"}
    assert got["flags"][0][0] == "likely unusable"
    # pictures are scaled into their column: each keeps its own width, none wider than the window share
    assert all(right <= WIDTH for _, _, right, _ in got["pics"])
