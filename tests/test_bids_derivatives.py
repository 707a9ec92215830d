"""A BIDS dataset segmented into derivatives/: dataset_description.json, BIDS-entity mask names, the QC dataset's
``Name``, non-T2w files counted; the official bids-validator (npm) on the dataset with its derivatives.

The npm package (1.15.0, its latest) skips ``derivatives/`` and, run on a derivatives folder itself, rejects every
derivative file name, even those the BIDS derivatives spec defines (``_label-SC_mask``, ``_dseg``): it cannot
validate derivatives. The test therefore validates the raw dataset with the derivatives inside it (0 errors), and
checks the derivatives' dataset_description.json against the spec's rules for derivative datasets.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import DATA, needs_data, run_cli

pytestmark = needs_data
VALIDATOR = ["npx", "--yes", "bids-validator@1.15.0"]


@pytest.fixture(scope="module")
def segmented(installed_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("bids")
    raw = root / "raw"
    for sub, src in (("sub-01", DATA / "t2" / "t2.nii.gz"), ("sub-02", DATA / "t2s" / "t2s.nii.gz")):
        (raw / sub / "anat").mkdir(parents=True)
        shutil.copy(src, raw / sub / "anat" / f"{sub}_T2w.nii.gz")
    shutil.copy(DATA / "t1" / "t1w.nii.gz", raw / "sub-02" / "anat" / "sub-02_T1w.nii.gz")
    (raw / "dataset_description.json").write_text(json.dumps(
        {"Name": "Tiny SCI cohort", "BIDSVersion": "1.9.0", "Authors": ["A", "B"], "DatasetDOI": "doi:10.0/x"}))
    (raw / "participants.tsv").write_text("participant_id\tage\nsub-01\t40\nsub-02\t50\n")
    (raw / "participants.json").write_text(json.dumps({"age": {"Description": "age", "Units": "year"}}))
    (raw / "README").write_text("A tiny dataset made of the SCT testing volumes, for the validator test. " * 5)
    deriv = raw / "derivatives" / "sciseg"
    r = run_cli("-i", raw, "-o", f"{deriv}/", "-qc", root / "qc", "-threads", "2",
                env={"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}, cwd=root)
    assert r.returncode == 0, r.stderr
    return raw, deriv, root / "qc", r


def test_derivatives_are_described_and_named_with_bids_entities(segmented):
    raw, deriv, qc, r = segmented
    desc = json.loads((deriv / "dataset_description.json").read_text())
    # BIDS 1.9 derivative datasets: Name and BIDSVersion required, DatasetType derivative, GeneratedBy (each with
    # a Name) required; SourceDatasets objects hold URL/DOI/Version
    assert desc["DatasetType"] == "derivative" and desc["BIDSVersion"] == "1.9.0"
    assert desc["Name"].startswith("Tiny SCI cohort")
    assert desc["GeneratedBy"][0]["Name"] == "sct_task_sciseg" and desc["GeneratedBy"][0]["Version"]
    assert desc["SourceDatasets"] == [{"URL": raw.resolve().as_uri(), "DOI": "doi:10.0/x"}]
    found = sorted(p.relative_to(deriv).as_posix() for p in deriv.rglob("*") if p.is_file())
    assert found == ["dataset_description.json"] + [
        f"{s}/anat/{s}_T2w_label-{label}_seg.{ext}" for s in ("sub-01", "sub-02")
        for label in ("SC", "lesion") for ext in ("json", "nii.gz")]
    assert "1 NIfTI file(s) in anat/ are not T2w and were skipped" in r.stdout
    entries = [json.loads(p.read_text()) for p in (qc / "entries").glob("*.json")]
    assert {e["dataset"] for e in entries} == {"Tiny SCI cohort"}  # the dataset's Name, not its folder's


def test_plain_input_keeps_sct_names(installed_model, tmp_path):
    shutil.copy(DATA / "t2s" / "t2s.nii.gz", tmp_path / "t2s.nii.gz")
    r = run_cli("-i", tmp_path / "t2s.nii.gz", "-o", f"{tmp_path / 'out'}/", "-threads", "2",
                env={"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "t2s_lesion_seg.json", "t2s_lesion_seg.nii.gz", "t2s_sc_seg.json", "t2s_sc_seg.nii.gz"]


def test_official_bids_validator_accepts_the_dataset_with_its_derivatives(segmented):
    raw, deriv, qc, r = segmented
    if shutil.which("npx") is None:
        pytest.skip("npx not found (install Node.js to run the official bids-validator)")
    try:
        run = subprocess.run([*VALIDATOR, str(raw), "--json"], capture_output=True, text=True, timeout=600,
                             env=dict(os.environ, npm_config_update_notifier="false"))
    except subprocess.TimeoutExpired:
        pytest.skip("bids-validator could not be fetched from the npm registry in time")
    if run.returncode not in (0, 1) or not run.stdout.lstrip().startswith("{"):
        pytest.skip("bids-validator could not be run (npm registry unreachable?)")
    report = json.loads(run.stdout)
    assert report["issues"]["errors"] == [], [e["key"] for e in report["issues"]["errors"]]
    assert sorted(report["summary"]["subjects"]) == ["01", "02"]
