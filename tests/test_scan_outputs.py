"""One plan of what a scan writes (io/outputs.ScanOutputs) and what hangs on it: a batch re-run never takes
the package's own outputs as inputs; masks, maps, sidecars and the analysis are one all-or-none set; a scan
whose write failed gets no QC row; a malformed QC entry never blocks segmentation; URLs with credentials are
never printed or stored. Real processes, real NIfTI, the embedded phantom-trained model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import pytest

from conftest import run_cli
from release_server import ReleaseServer
from sct_task_sciseg.demo.phantom import make_phantom
from sct_task_sciseg.tasks import SCISEG

pytest.importorskip("torch")


def _env(installed_model) -> dict:
    return {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}


def _task_spec(installed_model) -> str:
    return f"{SCISEG.name}@{installed_model.tag}"


def _folder(tmp_path: Path, n: int = 2) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    for i in range(n):
        nib.save(make_phantom(i)[0], str(folder / f"s{i}_T2w.nii.gz"))
    return folder


def _files(folder: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


# -- the plan --------------------------------------------------------------------------------------------
def test_the_plan_names_every_file_of_a_scan(tmp_path):
    from sct_task_sciseg.io.outputs import ScanOutputs, is_package_output, output_suffixes

    plan = ScanOutputs.for_input(tmp_path / "sub_T2w.nii.gz", None, SCISEG, ("soft",), analyze=True)
    names = [p.name for p in plan.files()]
    assert names == ["sub_T2w_sc_seg.nii.gz", "sub_T2w_lesion_seg.nii.gz", "sub_T2w_sc_seg_soft.nii.gz",
                     "sub_T2w_lesion_seg_soft.nii.gz", "sub_T2w_sc_seg.json", "sub_T2w_lesion_seg.json",
                     "sub_T2w_sc_seg_soft.json", "sub_T2w_lesion_seg_soft.json",
                     "sub_T2w_lesion_seg_analysis.csv", "sub_T2w_lesion_seg_label.nii.gz",
                     "sub_T2w_lesion_seg_analysis.json"]
    assert list(plan.images) == ["sc", "lesion", "sc_soft", "lesion_soft"]
    plain = ScanOutputs.for_input(tmp_path / "sub_T2w.nii.gz", str(tmp_path / "out") + "/", SCISEG)
    assert [p.name for p in plain.files()] == ["sub_T2w_sc_seg.nii.gz", "sub_T2w_lesion_seg.nii.gz",
                                               "sub_T2w_sc_seg.json", "sub_T2w_lesion_seg.json"]
    assert plain.folder == tmp_path / "out"
    assert all(is_package_output(p, [SCISEG]) for p in plan.files())
    assert not is_package_output(tmp_path / "sub_T2w.nii.gz", [SCISEG])
    assert "_lesion_seg_label.nii.gz" in output_suffixes(SCISEG)
    # temporary files of any of them (what the cluster removes after workers were killed while writing)
    temps = [tmp_path / f".{p.name}.4242-0a1b2c3d.tmp" for p in plan.files()]
    for t in temps:
        t.write_bytes(b"x")
    (tmp_path / ".sub_T2w.nii.gz.4242-0a1b2c3d.tmp").write_bytes(b"x")  # the input's: not the plan's
    assert sorted(plan.stale_temps()) == sorted(temps)
    assert plan.absolute().files() == [Path(os.path.abspath(p)) for p in plan.files()]


# -- batch inputs never include outputs -------------------------------------------------------------------
# flags -> files per scan: masks (+ maps) with sidecars (+ analysis csv, label, json)
PER_SCAN = {("-soft", "1"): 8, ("-analyze",): 7, ("-soft", "1", "-analyze"): 11}


@pytest.mark.parametrize("flags", sorted(PER_SCAN))
def test_a_folder_batch_rerun_never_takes_its_own_outputs_as_inputs(installed_model, tmp_path, flags):
    folder = _folder(tmp_path)
    args = ("-i", folder, "-task", _task_spec(installed_model), "-threads", "2", *flags)
    first = run_cli(*args, env=_env(installed_model))
    assert first.returncode == 0, first.stderr
    cohort = folder / "lesion_analysis_cohort.csv"  # the batch's table (rewritten by every -analyze batch)
    assert cohort.is_file() == ("-analyze" in flags)
    written = {k: v for k, v in _files(folder).items() if k != cohort.name}
    assert len(written) == 2 + 2 * PER_SCAN[flags]
    again = run_cli(*args, "-v", "2", env=_env(installed_model))
    assert again.returncode == 0, again.stderr
    assert "2 inputs" in again.stdout and "0 segmented, 0 failed, 2 skipped" in again.stdout, again.stdout
    assert {k: v for k, v in _files(folder).items() if k != cohort.name} == written  # nothing new or rewritten


# -- all-or-none, analysis included; no QC row for a failed write --------------------------------------------
def test_a_failed_write_during_analyze_keeps_the_old_set_and_gets_no_qc_row(installed_model, tmp_path):
    folder = _folder(tmp_path, 1)
    qc = tmp_path / "qc"
    args = ("-i", folder / "s0_T2w.nii.gz", "-task", _task_spec(installed_model), "-threads", "2", "-analyze")
    assert run_cli(*args, env=_env(installed_model)).returncode == 0
    before = _files(folder)
    blocked = folder / "s0_T2w_sc_seg.json"  # a target that cannot be replaced: the write fails mid-set
    blocked.unlink()
    blocked.mkdir()
    (blocked / "keep").write_text("x")
    r = run_cli(*args, "-overwrite", "-largest", "1", "-qc", qc, env=_env(installed_model))
    assert r.returncode == 1 and "s0_T2w_sc_seg.json" in r.stderr, r.stderr
    after = _files(folder)
    del before["s0_T2w_sc_seg.json"]
    assert after.pop("keep") and after == before  # analysis files untouched too (same inode, mtime, bytes)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert not list((qc / "entries").glob("*.json")) if (qc / "entries").exists() else True


# -- a malformed QC entry is reported and skipped ---------------------------------------------------------------
def test_a_malformed_qc_entry_never_blocks_segmentation(installed_model, tmp_path):
    folder = _folder(tmp_path, 1)
    qc = tmp_path / "qc"
    (qc / "entries").mkdir(parents=True)
    bad = qc / "entries" / "bad.json"
    bad.write_text(json.dumps({"id": "bad", "stats": "not a mapping", "flags": 3}))
    r = run_cli("-i", folder / "s0_T2w.nii.gz", "-task", _task_spec(installed_model), "-threads", "2",
                "-qc", qc, env=_env(installed_model))
    assert r.returncode == 0, r.stderr
    assert (folder / "s0_T2w_sc_seg.nii.gz").is_file() and (folder / "s0_T2w_lesion_seg.nii.gz").is_file()
    warnings = [ln for ln in r.stderr.splitlines() if str(bad) in ln]
    assert warnings and all("malformed QC entry" in ln for ln in warnings), r.stderr
    page = (qc / "index.html").read_text()
    assert 'data-rows="1"' in page and "s0_T2w.nii.gz" in page
    assert bad.read_text() == json.dumps({"id": "bad", "stats": "not a mapping", "flags": 3})  # left as found


# -- credentials in URLs ----------------------------------------------------------------------------------------
def test_credentials_in_a_model_url_are_never_printed_or_stored(installed_model, release_zip, tmp_path):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "m.zip").write_bytes(release_zip.read_bytes())
    models = tmp_path / "models"
    secret = "s3cr3t-T0KEN"
    with ReleaseServer(tmp_path / "mirror") as srv:
        url = srv.url.replace("://", f"://alice:{secret}@") + "/m.zip"
        r = run_cli("-install-task", f"{SCISEG.name}@mine", "-custom-url", url, "-v", "2",
                    env={"SCISEG_MODELS_DIR": str(models)})
        missing = run_cli("-install-task", f"{SCISEG.name}@other", "-custom-url", url.replace("m.zip", "no.zip"),
                          env={"SCISEG_MODELS_DIR": str(models)})
    assert r.returncode == 0, r.stderr
    assert secret not in r.stdout + r.stderr and "***@127.0.0.1" in r.stdout + r.stderr
    assert missing.returncode == 1 and secret not in missing.stdout + missing.stderr
    assert "alice:***@" not in missing.stderr and "://***@127.0.0.1" in missing.stderr, missing.stderr
    record = json.loads((models / SCISEG.name / "mine" / "sciseg_install.json").read_text())
    assert record["url"] == url.replace(f"alice:{secret}@", "***@")
    image = tmp_path / "t2.nii.gz"
    nib.save(make_phantom(3)[0], str(image))
    seg = run_cli("-i", image, "-task", f"{SCISEG.name}@mine", "-threads", "2", "-v", "2",
                  env={"SCISEG_MODELS_DIR": str(models)})
    assert seg.returncode == 0 and secret not in seg.stdout + seg.stderr
    sidecar = json.loads((tmp_path / "t2_sc_seg.json").read_text())
    assert sidecar["GeneratedBy"][0]["ModelURL"].startswith("http://***@127.0.0.1")
    for p in [*models.rglob("*"), *tmp_path.glob("t2*")]:
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
