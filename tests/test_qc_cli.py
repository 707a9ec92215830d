"""`sciseg -i … -qc DIR`: pictures and one report row per scan, from the real CLI."""
from __future__ import annotations

import json
import shutil

from conftest import DATA, T2_FAKE_LESION, needs_data, run_cli

pytestmark = needs_data


def test_cli_qc_report_for_a_batch(installed_model, tmp_path):
    bids = tmp_path / "bids"
    for sub, src in (("sub-01", T2_FAKE_LESION), ("sub-02", DATA / "t2" / "t2.nii.gz")):
        (bids / sub / "anat").mkdir(parents=True)
        shutil.copy(src, bids / sub / "anat" / f"{sub}_T2w.nii.gz")
    qc = tmp_path / "qc"
    env = {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}
    r = run_cli("-i", bids, "-o", f"{tmp_path / 'derivatives'}/", "-qc", qc, "-qc-dataset", "demo",
                "-threads", "2", env=env)
    assert r.returncode == 0, r.stderr
    entries = sorted((qc / "entries").glob("*.json"))
    assert len(entries) == 2
    rows = [json.loads(e.read_text()) for e in entries]
    assert {row["subject"] for row in rows} == {"sub-01", "sub-02"}
    html = (qc / "index.html").read_text()
    assert "sub-01_T2w.nii.gz" in html and "sub-02_T2w.nii.gz" in html
    assert len(list(qc.rglob("*.png"))) >= 16  # 8 pictures per scan
