"""A newcomer's first hour: plausibility flags that triage wrong inputs, and the CLI answers around a first run."""
from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from conftest import DATA, needs_data, run_cli
from sct_task_sciseg.batch import run_batch
from sct_task_sciseg.batch.inputs import Item, scan
from sct_task_sciseg.batch.runner import run_job
from sct_task_sciseg.qc import Roles
from sct_task_sciseg.qc.plausibility import likely_unusable, plausibility, scan_checks
from sct_task_sciseg.tasks import SCISEG

SCI_ROLES = Roles.of(SCISEG.labels)

SHARED = {"t1w": DATA / "t1" / "t1w.nii.gz", "t2": DATA / "t2" / "t2.nii.gz",
          "t2_fake_lesion": DATA / "t2" / "t2_fake_lesion.nii.gz", "t2s": DATA / "t2s" / "t2s.nii.gz"}


@pytest.fixture(scope="module")
def confident(installed_model):
    from sct_task_sciseg.pipeline import Segmenter
    return Segmenter(model_folder=installed_model.model_folder, threads=2, quiet=True, confidence=True)


@needs_data
def test_shared_volumes_t1w_flagged_t2_t2s_not(confident):
    """The demo model on the shared volumes: the T1w output is flagged unusable, the T2w and T2*w ones pass."""
    roles = Roles.of(confident.task.labels)
    found = {}
    for name, path in SHARED.items():
        result = confident.segment(path)
        assert set(result.uncertain) == {"sc", "lesion"} and not result.extra_images  # doubt measured, no map kept
        found[name] = scan_checks(result.masks, result.image.affine, roles, result.uncertain)
    t1 = found["t1w"]
    assert {"cord-csa-out-of-range", "cord-discontinuous", "low-confidence"} <= set(t1["flags"])
    assert likely_unusable(t1["flags"])
    assert t1["csa_median_mm2"] < 40 and t1["cord_pieces"] > 1 and t1["uncertain"]["sc"] > 0.4
    for name in ("t2", "t2_fake_lesion", "t2s"):
        assert found[name]["flags"] == [], (name, found[name])
        assert 40 <= found[name]["csa_median_mm2"] <= 100 and found[name]["cord_pieces"] == 1
        assert found[name]["uncertain"]["sc"] < 0.4


def test_plausibility_on_synthetic_masks():
    """A 60 mm² cylinder along S passes; cut in two it is discontinuous; thin, it is out of range; five blobs
    are too many lesions."""
    affine = np.diag([0.5, 0.5, 1.0, 1.0])  # RAS, axis 2 = S
    yy, xx = np.mgrid[:40, :40]
    disk = ((yy - 20) ** 2 + (xx - 20) ** 2) * 0.25 <= 60 / np.pi  # ≈ 60 mm² at 0.5 × 0.5 mm
    cord = np.repeat(disk[:, :, None], 30, axis=2)
    ok = plausibility({"sc": cord, "lesion": np.zeros_like(cord)}, affine, SCI_ROLES,
                      uncertain={"sc": 0.1, "lesion": 0})
    assert ok["flags"] == [] and 55 <= ok["csa_median_mm2"] <= 65 and ok["cord_coverage"] == 1.0
    cut = cord.copy()
    cut[:, :, 14:16] = False
    assert plausibility({"sc": cut}, affine, SCI_ROLES)["flags"] == ["cord-discontinuous"]
    thin = np.zeros_like(cord)
    thin[18:22, 18:22, :] = True  # 4 mm²
    assert plausibility({"sc": thin}, affine, SCI_ROLES)["flags"] == ["cord-csa-out-of-range"]
    lesion = np.zeros_like(cord)
    for z in (2, 8, 14, 20, 26):
        lesion[20, 20, z] = True
    found = plausibility({"sc": cord, "lesion": lesion}, affine, SCI_ROLES, uncertain={"sc": 0.5, "lesion": 0.0})
    assert found["flags"] == ["many-lesions", "low-confidence"] and likely_unusable(found["flags"])
    assert not likely_unusable(["cord-at-fov-edge", "low-confidence"]) and likely_unusable(["empty-cord"])


@needs_data
def test_cli_t1w_one_warning_demo_warning_report_path_and_missing_folder(installed_model, tmp_path):
    """-o out/sub/x.nii.gz creates out/sub; a T1w scan gets one 'likely unusable' line, the demo model one
    'not for research' line, the run ends with the report's path; the QC row carries the measured checks."""
    qc = tmp_path / "qc"
    env = {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}
    r = run_cli("-i", SHARED["t1w"], "-o", tmp_path / "out" / "sub" / "t1.nii.gz", "-qc", qc, "-threads", "2",
                env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "sub" / "t1_sc_seg.nii.gz").is_file()
    assert r.stderr.count("output likely unusable") == 1
    assert r.stderr.count("demo model — not for research") == 1
    assert r.stdout.rstrip().splitlines()[-1] == f"QC report: {(qc / 'index.html').resolve()}"
    (entry,) = [json.loads(p.read_text()) for p in (qc / "entries").glob("*.json")]
    assert "cord-discontinuous" in entry["flags"] and entry["checks"]["csa_median_mm2"] < 40
    assert 0.4 < entry["checks"]["uncertain"]["sc"] <= 1.5


def test_bare_sciseg_prints_one_line():
    r = run_cli()
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "sciseg: error: give an input with -i FILE (sciseg -h: every option; sciseg -demo: an offline demo)"]


@pytest.mark.parametrize("extra, named", [(["-qc", "q"], "-qc"), (["-analyze"], "-analyze"),
                                          (["-task", "seg_sc_lesion_t2w_sci@r20240130"], "-task")])
def test_demo_refuses_what_it_does_not_take(extra, named, tmp_path):
    r = run_cli("-demo", "-o", tmp_path / "d", *extra, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"does not take {named}" in r.stderr and not (tmp_path / "d").exists()


def test_batch_order_is_natural(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    for n in (10, 2, 1, 11):
        nib.save(img, tmp_path / f"scan{n}.nii.gz")
    assert [it.path.name for it in scan([str(tmp_path)], SCISEG)[0]] == [
        "scan1.nii.gz", "scan2.nii.gz", "scan10.nii.gz", "scan11.nii.gz"]


@needs_data
def test_interrupted_batch_says_how_many_are_done(segmenter, tmp_path):
    items = []
    for n in range(3):
        shutil.copy(SHARED["t2s"], tmp_path / f"s{n}.nii.gz")
        items.append(Item(tmp_path / f"s{n}.nii.gz", tmp_path))

    class CtrlCAfterOne:
        """An executor interrupted (as by Ctrl-C in the main thread) once the first scan is done."""

        def run(self, pipeline):
            first = pipeline.todo[0]
            run_job(pipeline.segmenter, first)
            pipeline.finish(first)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        run_batch(segmenter, items, f"{tmp_path / 'out'}/", verbose=0, executor=CtrlCAfterOne())
    assert info.value.batch_progress == (1, 3)


@needs_data
def test_readme_real_weights_example_runs_as_written(server, tmp_path):
    """The README's second Python block, verbatim, on this machine's CPUs (2 here), against a loopback mirror."""
    import subprocess
    import sys
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("<!-- readme:python-real -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "Segmenter(threads=" in block
    for name in ("sub-01_T2w.nii.gz", "sub-02_T2w.nii.gz"):
        shutil.copy(SHARED["t2s"], tmp_path / name)
    (tmp_path / "bids" / "sub-01" / "anat").mkdir(parents=True)
    shutil.copy(SHARED["t2s"], tmp_path / "bids" / "sub-01" / "anat" / "sub-01_T2w.nii.gz")
    env = dict(os.environ, SCISEG_MODELS_DIR=str(tmp_path / "models"), SCISEG_RELEASE_URL=server.url)
    out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['done']"
    assert (tmp_path / "sub-02_T2w_sc_seg.nii.gz").is_file()
    assert (tmp_path / "bids" / "derivatives" / "sciseg" / "sub-01" / "anat" / "sub-01_T2w_label-SC_seg.nii.gz"
            ).is_file()


def test_install_records_are_stated_honestly(release_zip, tmp_path):
    """After -custom-url nothing claims a recorded sha256; an install into -models-dir says later runs need that
    folder; a run without it refuses to download what another known folder holds, and names that folder."""
    a = tmp_path / "elsewhere"
    r = run_cli("-install-task", "seg_sc_lesion_t2w_sci@r20240729", "-custom-url", release_zip, "-models-dir", a)
    assert r.returncode == 0, r.stderr
    assert f"later runs need -models-dir {a}" in r.stdout
    listed = run_cli("-list-tasks", "-models-dir", a).stdout
    line = next(x for x in listed.splitlines() if x.strip().startswith("r20240729"))
    assert "recorded at first install" not in line and "custom source: no trusted sha256 recorded" in line
    assert "never become the trusted record" in listed
    assert not (a / "seg_sc_lesion_t2w_sci" / "trusted_sha256.json").exists()
    # a plain run whose models folder lacks the release, while $SCISEG_MODELS_DIR (a known folder) has it
    r = run_cli("-i", DATA / "t2s" / "t2s.nii.gz", "-o", f"{tmp_path / 'out'}/", "-models-dir", tmp_path / "empty",
                env={"SCISEG_MODELS_DIR": str(a), "SCISEG_RELEASE_URL": "http://127.0.0.1:9"})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"but is in {a}: add -models-dir {a}" in r.stderr
    assert not (tmp_path / "empty").exists() and not (tmp_path / "out").exists()


@needs_data
def test_cluster_port_warning_hidden_and_up_to_date_resume_starts_no_cluster(installed_model, tmp_path):
    """Dask's dashboard port taken: no raw 'Port 8787 is already in use' warning; a resume with every scan up
    to date answers without starting a cluster."""
    import re
    import socket
    import time

    pytest.importorskip("distributed")
    for n in (1, 2):
        (tmp_path / "in").mkdir(exist_ok=True)
        shutil.copy(SHARED["t2s"], tmp_path / "in" / f"scan{n}.nii.gz")
    args = ("-i", tmp_path / "in", "-o", f"{tmp_path / 'out'}/", "-scheduler", "local", "-workers", "1",
            "-threads", "1")
    env = {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        except OSError:
            pass  # already in use by something else: the same situation
        first = run_cli(*args, "-dashboard", env=env, cwd=tmp_path, timeout=600)  # asked for: port 8787
    assert first.returncode == 0, first.stderr
    assert "already in use" not in first.stdout + first.stderr
    assert re.search(r"^local cluster: 1 workers x 1 threads; dashboard: http://127\.0\.0\.1:\d+/status$",
                     first.stdout, re.M), first.stdout
    t0 = time.perf_counter()
    again = run_cli(*args, env=env, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "local cluster:" not in again.stdout and "done: 0 segmented, 0 failed, 2 skipped" in again.stdout
    print(f"up-to-date resume: {time.perf_counter() - t0:.1f} s")


def test_skip_reasons_name_no_machine_path(tmp_path):
    """Without the data or the SCT environments, tests skip with a reason that says what to set, not a path."""
    import subprocess
    import sys
    from pathlib import Path

    missing = tmp_path / "nowhere-xyz"
    env = {k: v for k, v in os.environ.items() if k not in ("SCISEG_SCT_PYTHON", "SCISEG_SCT_PYTHONS")}
    env["SCISEG_TEST_DATA"] = str(missing)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                          "tests/test_first_hour.py::test_shared_volumes_t1w_flagged_t2_t2s_not",
                          "tests/test_trust.py::test_payloads_refused_on_sct_torch"],
                         capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1],
                         timeout=300)
    reasons = [line for line in out.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(reasons) == 2, out.stdout  # the data, the SCT environments
    assert all("nowhere-xyz" not in r and "/work/" not in r for r in reasons), reasons


@needs_data
def test_confidence_leaves_the_masks_unchanged(segmenter, confident):
    """Measuring the model's doubt keeps nnU-Net's probabilities of the same inference: the masks are the
    default masks, voxel for voxel."""
    import time

    for name in ("t2_fake_lesion", "t1w"):
        t0 = time.perf_counter()
        plain = segmenter.segment(SHARED[name])
        t1 = time.perf_counter()
        measured = confident.segment(SHARED[name])
        t2 = time.perf_counter()
        print(f"{name}: {t1 - t0:.2f} s plain, {t2 - t1:.2f} s with confidence")
        assert np.array_equal(plain.labels, measured.labels)
        for k in plain.masks:
            assert np.array_equal(np.asarray(plain.masks[k].dataobj), np.asarray(measured.masks[k].dataobj))
        assert not plain.uncertain and set(measured.uncertain) == {"sc", "lesion"}
