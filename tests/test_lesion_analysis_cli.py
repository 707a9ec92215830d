"""The lesion analysis as real processes: ``sciseg_analyze_lesion`` and ``sciseg -analyze`` (batch, resume)."""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import T2_FAKE_LESION, needs_data, run_cli

DATA = T2_FAKE_LESION.parent
LESION, CORD = DATA / "t2_fake_lesion_lesion_seg.nii.gz", DATA / "t2_fake_lesion_sc_seg.nii.gz"
# SCT 7.3 sct_analyze_lesion on these masks (benchmarks/results/analyze_lesion.md)
SCT_73 = {"volume [mm3]": 83.456114752, "length [mm]": 10.393295442771858, "width [mm]": 5.174868720027355,
          "max_equivalent_diameter [mm]": 4.336505046218873, "max_axial_damage_ratio []": 0.28409090909090906,
          "interpolated_midsagittal_slice": 13.120445250646725,
          "interpolated_dorsal_bridge_width [mm]": 1.3894927257153027,
          "interpolated_ventral_bridge_width [mm]": 1.476412431815768,
          "interpolated_total_bridge_width [mm]": 2.8659051575310706,
          "slice_14_dorsal_bridge_width [mm]": 0.7392669600039078}


def analyze_cli(*args, cwd=None):
    exe = Path(sys.executable).with_name("sciseg_analyze_lesion")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def read_csv(path: Path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@needs_data
def test_analyze_lesion_cli_matches_sct(tmp_path):
    before = (sha(LESION), sha(CORD), sha(T2_FAKE_LESION))
    r = analyze_cli("-m", LESION, "-s", CORD, "-i", T2_FAKE_LESION, "-ofolder", tmp_path / "out", "-perslice", "1")
    assert r.returncode == 0, r.stderr
    rows = read_csv(tmp_path / "out" / "t2_fake_lesion_lesion_seg_analysis.csv")
    assert len(rows) == 1 and rows[0]["label"] == "1"
    for col, value in SCT_73.items():
        assert float(rows[0][col]) == pytest.approx(value, rel=1e-12), col
    assert float(rows[0]["mean_t2_fake_lesion"]) > 0 and float(rows[0]["std_t2_fake_lesion"]) > 0
    label = nib.load(tmp_path / "out" / "t2_fake_lesion_lesion_seg_label.nii.gz")
    assert int(np.count_nonzero(np.asanyarray(label.dataobj) == 1)) == 163
    side = json.loads((tmp_path / "out" / "t2_fake_lesion_lesion_seg_analysis.json").read_text())
    assert side["Summary"]["lesion_count"] == 1 and side["Sources"]["lesion"]["sha256"] == before[0]
    assert "lesions: 1, total volume 83.46 mm3" in r.stdout
    assert (sha(LESION), sha(CORD), sha(T2_FAKE_LESION)) == before


@needs_data
def test_analyze_lesion_cli_bad_and_empty_inputs(tmp_path):
    other = nib.load(CORD)
    small = nib.Nifti1Image(np.asanyarray(other.dataobj)[:50], other.affine, other.header)
    nib.save(small, tmp_path / "small.nii.gz")
    r = analyze_cli("-m", LESION, "-s", tmp_path / "small.nii.gz", "-ofolder", tmp_path / "o1")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "differs from the lesion mask" in r.stderr
    assert str(LESION) in r.stderr and not (tmp_path / "o1" / "t2_fake_lesion_lesion_seg_analysis.csv").exists()
    (tmp_path / "junk.nii.gz").write_bytes(b"not an image")
    r = analyze_cli("-m", tmp_path / "junk.nii.gz", "-s", CORD, "-ofolder", tmp_path / "o2")
    assert r.returncode == 1 and "junk.nii.gz" in r.stderr and r.stderr.count("\n") == 1
    les = nib.load(LESION)
    nib.save(nib.Nifti1Image(np.zeros(les.shape, np.uint8), les.affine, les.header), tmp_path / "empty.nii.gz")
    r = analyze_cli("-m", tmp_path / "empty.nii.gz", "-s", CORD, "-ofolder", tmp_path / "o3")
    assert r.returncode == 0, r.stderr
    rows = read_csv(tmp_path / "o3" / "empty_analysis.csv")
    assert [(x["label"], x["volume [mm3]"], x["note"]) for x in rows] == [("0", "0.0", "no lesion found")]


@needs_data
def test_sciseg_analyze_batch_cohort_and_resume(installed_model, tmp_path):
    src = tmp_path / "in"
    for sub in ("sub-01", "sub-02"):
        (src / sub / "anat").mkdir(parents=True)
        (src / sub / "anat" / f"{sub}_T2w.nii.gz").write_bytes(T2_FAKE_LESION.read_bytes())
    out = tmp_path / "out"
    env = {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}
    args = ("-i", src, "-o", f"{out}/", "-threads", "2", "-analyze", "-precision", "fp32")
    r = run_cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    per_scan = {}
    for sub in ("sub-01", "sub-02"):
        base = out / sub / "anat" / f"{sub}_T2w_label-lesion_seg"  # BIDS-derivatives names
        mask = np.asanyarray(nib.load(f"{base}.nii.gz").dataobj).astype(bool)
        rows = read_csv(Path(f"{base}_analysis.csv"))
        label = np.asanyarray(nib.load(f"{base}_label.nii.gz").dataobj)
        cord = np.asanyarray(nib.load(out / sub / "anat" / f"{sub}_T2w_label-SC_seg.nii.gz").dataobj).astype(bool)
        assert np.array_equal(label > 0, mask & cord)
        voxel = float(np.prod(nib.load(f"{base}.nii.gz").header.get_zooms()))
        assert sum(float(x["volume [mm3]"]) for x in rows) == pytest.approx(mask.sum() * voxel)
        per_scan[sub] = rows
    cohort = read_csv(out / "lesion_analysis_cohort.csv")
    scans = [x for x in cohort if x["row"] == "scan"]
    assert [x["participant"] for x in scans] == ["sub-01", "sub-02"]
    for x in scans:
        lesions = [y for y in cohort if y["row"] == "lesion" and y["participant"] == x["participant"]]
        mine = per_scan[x["participant"]]
        assert int(x["lesion_count"]) == len(lesions) == len([y for y in mine if y["label"] != "0"])
        assert float(x["volume [mm3]"]) == pytest.approx(sum(float(y["volume [mm3]"]) for y in mine))
    # resume: everything up to date; a missing analysis file makes its scan run again
    stamp = (out / "sub-01" / "anat" / "sub-01_T2w_label-lesion_seg_analysis.json").stat().st_mtime_ns
    r = run_cli(*args, env=env)
    assert r.returncode == 0 and "done: 0 segmented, 0 failed, 2 skipped" in r.stdout, r.stdout
    assert (out / "sub-01" / "anat" / "sub-01_T2w_label-lesion_seg_analysis.json").stat().st_mtime_ns == stamp
    assert len(read_csv(out / "lesion_analysis_cohort.csv")) == len(cohort)
    (out / "sub-02" / "anat" / "sub-02_T2w_label-lesion_seg_analysis.csv").unlink()
    r = run_cli(*args, env=env)
    assert "done: 1 segmented, 0 failed, 1 skipped" in r.stdout, r.stdout
    assert (out / "sub-02" / "anat" / "sub-02_T2w_label-lesion_seg_analysis.csv").is_file()
