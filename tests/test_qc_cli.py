"""`sciseg -i … -qc DIR`: pictures and one report row per scan, from the real CLI."""
from __future__ import annotations

import json
import shlex
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
                "-threads", "2", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    entries = sorted((qc / "entries").glob("*.json"))
    assert len(entries) == 2
    rows = [json.loads(e.read_text()) for e in entries]
    assert {row["subject"] for row in rows} == {"sub-01", "sub-02"}
    html = (qc / "index.html").read_text()
    assert "sub-01_T2w.nii.gz" in html and "sub-02_T2w.nii.gz" in html
    assert len(list(qc.rglob("*.png"))) >= 16  # 8 pictures per scan
    # each row records the command line and the parameters the outputs' sidecars record
    for row in rows:
        command = shlex.split(row["command"])  # the tests run the command as python -m sct_task_sciseg
        program = command[:3] if command[:3] == ["python", "-m", "sct_task_sciseg"] else command[:1]
        assert program in (["sciseg"], ["python", "-m", "sct_task_sciseg"]), command
        assert command[len(program):] == ["-i", str(bids), "-o", f"{tmp_path / 'derivatives'}/",
                                          "-qc", str(qc), "-qc-dataset", "demo", "-threads", "2"]
        assert row["cwd"] == str(tmp_path)
        stem = row["file"].replace(".nii.gz", "")
        sidecar = json.loads((tmp_path / "derivatives" / row["subject"] / "anat" / f"{stem}_label-SC_seg.json")
                             .read_text())["GeneratedBy"][0]
        assert row["parameters"] == sidecar["Parameters"] and row["parameters"]["threads"] == 2
        assert row["model_sha256"] == sidecar["ModelSHA256"] == installed_model.sha256
        # the tests install the demo weights under the V2 tag: the hash still marks them as a demo model
        assert row["model_tag"] == "r20240729" and row["model_demo"] is True
    assert html.count("demo model — not for research") == 3  # two rows and the toolbar


def test_cli_qc_marks_the_demo_release(tmp_path):
    """``task@phantom-r20261124`` (the embedded release, installed offline on first use): a demo row."""
    qc = tmp_path / "qc"
    r = run_cli("-i", T2_FAKE_LESION, "-o", f"{tmp_path / 'out'}/", "-qc", qc,
                "-task", "seg_sc_lesion_t2w_sci@phantom-r20261124", "-thr", "0.4", "-threads", "1",
                env={"SCISEG_MODELS_DIR": str(tmp_path / "models")}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (entry,) = [json.loads(p.read_text()) for p in (qc / "entries").glob("*.json")]
    assert entry["model_tag"] == "phantom-r20261124" and entry["model_demo"] is True
    assert "not for research" in entry["model_description"]
    assert entry["parameters"]["thr"] == 0.4 and "-thr 0.4" in entry["command"]
    html = (qc / "index.html").read_text()
    assert 'class="scan demo"' in html and html.count("demo model — not for research") == 2
