"""Inputs and outputs that must never be lost, wrong or late: collisions, half-written pairs, signals,
intensity scale, numeric flags, resource limits, clear refusals, checks before anything loads."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import SCISEG_COMMAND, T2_FAKE_LESION, needs_data, run_cli
from sct_task_sciseg.batch.inputs import expand, scan
from sct_task_sciseg.demo.phantom import dice
from sct_task_sciseg.errors import InputError
from sct_task_sciseg.tasks import SCISEG
from sct_task_sciseg.inference.settings import cpu_flags, fp16_cpu_warning
from sct_task_sciseg.io.intensity import power_of_two_scale
from sct_task_sciseg.io.nifti import load_image, read_header
from sct_task_sciseg.pipeline.writer import write_outputs

pytestmark = needs_data
SHARED = [T2_FAKE_LESION.parent / "t2.nii.gz", T2_FAKE_LESION, T2_FAKE_LESION.parents[1] / "t1" / "t1w.nii.gz",
          T2_FAKE_LESION.parents[1] / "t2s" / "t2s.nii.gz"]


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def models_env(installed_model) -> dict:
    return {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}


def copy_input(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(T2_FAKE_LESION.read_bytes())
    return path


def errors(stderr: str):
    """The error lines of ``stderr`` (progress lines aside); a traceback fails the test."""
    assert "Traceback" not in stderr, stderr
    return [ln for ln in stderr.splitlines() if ln.startswith("sciseg: error:")]


def masks_of(result):
    return {k: np.asanyarray(m.dataobj) for k, m in result.masks.items()}


def save(path: Path, data, affine, header=None) -> Path:
    img = nib.Nifti1Image(data, affine, header)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))
    return path


# -- data loss: outputs onto inputs, two inputs onto one output, the models folder ---------------------------
def test_output_that_is_the_input_is_refused(installed_model, tmp_path):
    src = copy_input(tmp_path / "X_sc_seg.nii.gz")
    before = sha(src)
    r = run_cli("-i", src, "-o", tmp_path / "X.nii.gz", env=models_env(installed_model))
    assert r.returncode == 2 and len(errors(r.stderr)) == 1, r.stderr
    assert "X_sc_seg.nii.gz" in r.stderr and "is this input" in r.stderr
    assert sha(src) == before and sorted(p.name for p in tmp_path.iterdir()) == ["X_sc_seg.nii.gz"]
    other = copy_input(tmp_path / "t2.nii.gz")  # one input is the other's output
    copy_input(tmp_path / "t2_sc_seg.nii.gz")
    before = sha(tmp_path / "t2_sc_seg.nii.gz")
    r = run_cli("-i", other, tmp_path / "t2_sc_seg.nii.gz", env=models_env(installed_model))
    assert r.returncode == 2 and "is an input and would be overwritten" in r.stderr, r.stderr
    assert sha(tmp_path / "t2_sc_seg.nii.gz") == before


def test_analysis_outputs_onto_inputs_are_refused(installed_model, tmp_path):
    scan = copy_input(tmp_path / "t2.nii.gz")
    label = copy_input(tmp_path / "t2_lesion_seg_label.nii.gz")  # what -analyze writes for t2.nii.gz
    before = sha(label)
    r = run_cli("-i", scan, label, "-analyze", env=models_env(installed_model))
    assert r.returncode == 2 and len(errors(r.stderr)) == 1, r.stderr
    assert "t2_lesion_seg_label.nii.gz: is an input and would be overwritten by the output of" in r.stderr
    assert sha(label) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "t2.nii.gz", "t2_lesion_seg_label.nii.gz"]


def test_two_inputs_with_one_output_are_refused(installed_model, tmp_path):
    a, b = copy_input(tmp_path / "d1" / "t2.nii.gz"), copy_input(tmp_path / "d2" / "t2.nii.gz")
    r = run_cli("-i", a, b, "-o", f"{tmp_path / 'out'}/", env=models_env(installed_model))
    assert r.returncode == 2 and len(errors(r.stderr)) == 1, r.stderr
    assert "would both write" in r.stderr and str(a) in r.stderr and str(b) in r.stderr
    assert not (tmp_path / "out").exists()


def test_nothing_is_written_inside_the_models_folder(installed_model, tmp_path):
    models = installed_model.path.parent.parent
    src = copy_input(models / "scan.nii.gz")
    try:
        r = run_cli("-i", src, env=models_env(installed_model))
        assert r.returncode == 2 and "inside the models folder" in r.stderr, r.stderr
        r = run_cli("-i", T2_FAKE_LESION, "-o", f"{tmp_path}/", "-qc", models / "qc", env=models_env(installed_model))
        assert r.returncode == 2 and "inside the models folder" in r.stderr, r.stderr
        assert sorted(p.name for p in models.iterdir() if p.name.startswith(("scan", "qc"))) == ["scan.nii.gz"]
    finally:
        src.unlink()


# -- half pairs --------------------------------------------------------------------------------------------
def _outputs(folder: Path):
    return {"sc": folder / "X_sc_seg.nii.gz", "lesion": folder / "X_lesion_seg.nii.gz"}


def test_failed_write_restores_the_previous_pair(segmenter, tmp_path):
    result = segmenter.segment(T2_FAKE_LESION)
    paths = _outputs(tmp_path)
    old = {paths["sc"]: b"old cord mask", tmp_path / "X_sc_seg.json": b'{"old": "sidecar"}'}
    for p, content in old.items():
        p.write_bytes(content)
    paths["lesion"].mkdir()  # an old "lesion mask" that cannot be replaced
    (paths["lesion"] / "keep").write_text("x")
    with pytest.raises(OSError):
        write_outputs(result.masks, paths, segmenter.provenance(T2_FAKE_LESION), segmenter.task)
    assert {p: p.read_bytes() for p in old} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X_lesion_seg.nii.gz", "X_sc_seg.json", "X_sc_seg.nii.gz"]
    paths["sc"].unlink()
    (tmp_path / "X_sc_seg.json").unlink()  # no previous pair: nothing new may stay either
    with pytest.raises(OSError):
        write_outputs(result.masks, paths, segmenter.provenance(T2_FAKE_LESION), segmenter.task)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X_lesion_seg.nii.gz"]


def _can_mount() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


@pytest.mark.skipif(not _can_mount(), reason="a small tmpfs (a full disk) needs root on Linux")
def test_full_disk_leaves_no_half_pair(segmenter, tmp_path):
    result = segmenter.segment(T2_FAKE_LESION)
    prov = segmenter.provenance(T2_FAKE_LESION)
    probe = tmp_path / "probe"
    probe.mkdir()
    write_outputs(result.masks, _outputs(probe), prov, segmenter.task)
    pages = {p.name: -(-p.stat().st_size // 4096) for p in probe.iterdir()}
    room = pages["X_sc_seg.nii.gz"] + pages["X_sc_seg.json"]  # the cord pair fits, the lesion mask does not
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room * 4}k", "tmpfs", str(disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        with pytest.raises(OSError) as exc:
            write_outputs(result.masks, _outputs(disk), prov, segmenter.task)
        assert exc.value.errno == 28  # ENOSPC
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# -- signals and temporary files ---------------------------------------------------------------------------
def slow_input(path: Path) -> Path:
    """t2_fake_lesion with 2× voxel sizes: 8× the model-space voxels (tens of tiles), same data."""
    src = nib.load(str(T2_FAKE_LESION))
    aff = src.affine.copy()
    aff[:3, :3] *= 2
    return save(path, np.asanyarray(src.dataobj), aff)


def wait_for_torch(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until ``proc`` has mapped libtorch: past its checks, inside the model load, before any output."""
    maps = Path(f"/proc/{proc.pid}/maps")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"finished early: {proc.communicate()}")
        try:
            if "libtorch" in maps.read_text():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError("torch never loaded")


def start_cli(args, env) -> subprocess.Popen:
    return subprocess.Popen([*SCISEG_COMMAND, *map(str, args)], env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches /proc/PID/maps")
def test_sigterm_is_handled_like_ctrl_c(installed_model, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    src = slow_input(folder / "in.nii.gz")
    before = sha(src)
    proc = start_cli(["-i", src, "-threads", "1"], models_env(installed_model))
    wait_for_torch(proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err and len(errors(err)) == 1, err
    assert sorted(p.name for p in folder.iterdir()) == ["in.nii.gz"] and sha(src) == before
    assert [it.path.name for it in expand([str(folder)], SCISEG)] == ["in.nii.gz"]


def test_temporary_and_hidden_files_are_never_inputs(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    copy_input(flat / "t2.nii.gz")
    for name in (".t2_sc_seg.nii.gz.1234-abcdef01.tmp", "._t2.nii.gz", ".t2.nii.gz"):
        (flat / name).write_bytes(b"\0" * 10)
    assert [it.path.name for it in expand([str(flat)], SCISEG)] == ["t2.nii.gz"]
    anat = tmp_path / "ds" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    copy_input(anat / "sub-01_T2w.nii.gz")
    (anat / ".sub-01_T2w.nii.gz").write_bytes(b"\0")
    (anat / "._sub-01_T2w.nii.gz").write_bytes(b"\0")
    assert [it.path.name for it in expand([str(tmp_path / "ds")], SCISEG)] == ["sub-01_T2w.nii.gz"]


def test_a_late_signal_does_not_change_the_exit_status(installed_model):
    # signals that land between the end of the run and the end of the process are ignored
    code = ("import os, signal, sys; import sct_task_sciseg.cli as cli\n"
            "def late(rc):\n"
            "    os.kill(os.getpid(), signal.SIGINT); os.kill(os.getpid(), signal.SIGTERM)\n"
            "    print('exit', rc); sys.exit(rc)\n"
            "cli._exit_now = late; cli.console_main()")
    r = subprocess.run([sys.executable, "-c", code, "-list-tasks"], capture_output=True, text=True,
                       env=dict(os.environ, **models_env(installed_model)))
    assert r.returncode == 0 and "exit 0" in r.stdout, r.stderr


def test_the_command_ends_its_process_with_the_status_and_flushed_output(installed_model, tmp_path):
    code = "from sct_task_sciseg.cli import console_main; console_main(); print('after main')"
    r = subprocess.run([sys.executable, "-c", code, "-list-tasks"], capture_output=True, text=True,
                       env=dict(os.environ, **models_env(installed_model)))
    assert r.returncode == 0 and "seg_sc_lesion_t2w_sci" in r.stdout and "after main" not in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-c", code, "-i", str(tmp_path / "missing.nii.gz")], capture_output=True,
                       text=True, env=dict(os.environ, **models_env(installed_model)))
    assert r.returncode != 0 and "missing.nii.gz" in r.stderr and "after main" not in r.stdout


# -- intensity scale -----------------------------------------------------------------------------------------
def test_masks_do_not_depend_on_the_intensity_scale(segmenter):
    src = nib.load(str(T2_FAKE_LESION))
    data = np.asanyarray(src.dataobj).astype(np.float32)
    ref = masks_of(segmenter.segment(data, src.affine))
    for factor in (2.0 ** -40, 2.0 ** 100):  # exact: the very same masks
        out = masks_of(segmenter.segment(data * np.float32(factor), src.affine))
        assert all(np.array_equal(out[k], ref[k]) for k in ref), factor
    out = masks_of(segmenter.segment(data * np.float32(1e30), src.affine))  # rounded once: Dice, not identity
    assert dice(out["sc"], ref["sc"]) > 0.999 and dice(out["lesion"], ref["lesion"]) > 0.98
    for path in SHARED:  # ordinary scans go to nnU-Net unchanged
        assert power_of_two_scale(np.asanyarray(nib.load(str(path)).dataobj).astype(np.float32)) == 1.0


def test_extreme_outlier_is_a_clear_error(installed_model, tmp_path):
    src = nib.load(str(T2_FAKE_LESION))
    data = np.asanyarray(src.dataobj).astype(np.float32)
    data[50, 50, 15] = 3e38
    p = save(tmp_path / "outlier.nii.gz", data, src.affine)
    r = run_cli("-i", p, env=models_env(installed_model))
    assert r.returncode == 1 and len(errors(r.stderr)) == 1, r.stderr
    assert str(p) in r.stderr and "cannot be normalised" in r.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["outlier.nii.gz"]
    for path in SHARED:
        load_image(path)  # real scans pass


@pytest.mark.parametrize("flag", [("-thr", "nan"), ("-thr", "2"), ("-thr", "-1"), ("-thr", "0"), ("-thr", "1"),
                                  ("-threads", "-4"), ("-threads", "100000"), ("-threads", "0"),
                                  ("-tile-step-size", "0.001"), ("-tile-step-size", "1.5"),
                                  ("-tile-step-size", "inf"), ("-folds", "-1"), ("-folds", "1", "1"),
                                  ("-seed", "-3"), ("-checkpoint", "../../x.pth"), ("-remove-small", "5xx")])
def test_numeric_flags_are_validated(flag, tmp_path):
    r = run_cli("-i", T2_FAKE_LESION, "-o", f"{tmp_path}/", *flag)
    assert r.returncode == 2 and len(errors(r.stderr)) == 1, r.stderr
    assert r.stderr.startswith("sciseg: error: argument " + flag[0]) and flag[1] in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


# -- resources -------------------------------------------------------------------------------------------------
def lying_header(path: Path, dims) -> Path:
    """A small .nii.gz whose header claims ``dims`` float32 voxels (its data are a few zeros)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(dims)
    hdr.set_data_dtype(np.float32)
    hdr.set_qform(np.eye(4), code=1)
    hdr.set_sform(np.eye(4), code=1)
    hdr["vox_offset"] = 352
    raw = hdr.binaryblock + b"\0" * 4 + b"\0" * 500_000
    path.write_bytes(gzip.compress(raw))
    return path


@pytest.mark.parametrize("dims", [(640, 640, 640), (1250, 1250, 1250)])
def test_header_claiming_huge_data_is_refused_before_reading(tmp_path, dims):
    p = lying_header(tmp_path / "liar.nii.gz", dims)
    assert p.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="truncated or corrupt") as exc:
            load_image(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(exc.value).startswith(str(p)) and peak < 20e6, peak


def test_input_voxel_cap(tmp_path, monkeypatch):
    p = save(tmp_path / "t2.nii.gz", np.asanyarray(nib.load(str(T2_FAKE_LESION)).dataobj),
             nib.load(str(T2_FAKE_LESION)).affine)
    monkeypatch.setenv("SCISEG_MAX_MODEL_VOXELS", "100000")
    with pytest.raises(InputError, match="SCISEG_MAX_MODEL_VOXELS"):
        read_header(p)
    monkeypatch.setenv("SCISEG_MAX_MODEL_VOXELS", "0")
    assert read_header(p).shape == (99, 99, 29)


def big_voxels(path: Path, mm: float = 8.0) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(100, 20, (64, 64, 64)).astype(np.float32)
    return save(path, data, np.diag([mm, mm, mm, 1.0]))


def test_huge_model_space_is_refused_before_anything_runs(installed_model, tmp_path):
    p = big_voxels(tmp_path / "big_voxels.nii.gz")
    code = ("import sys; from sct_task_sciseg.cli import main; rc = main(sys.argv[1:]); "
            "print('torch' in sys.modules); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "-i", str(p)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **models_env(installed_model)))
    assert r.returncode == 1 and len(errors(r.stderr)) == 1, r.stderr
    assert str(p) in r.stderr and "M voxels, more than the cap" in r.stderr and r.stdout.strip() == "False"


def test_segmenter_refuses_huge_model_space(segmenter, tmp_path):
    p = big_voxels(tmp_path / "big_voxels.nii.gz")
    with pytest.raises(InputError, match="at the model's"):
        segmenter.segment(p)
    with pytest.raises(InputError, match="at the model's"):
        segmenter.segment(nib.load(str(p)))


# -- clear refusals and valid odd headers ----------------------------------------------------------------------
@pytest.mark.parametrize("how", ["link-loop", "permissions"])
def test_unreadable_bids_subject_is_reported_and_counted(installed_model, tmp_path, how):
    if how == "permissions" and os.geteuid() == 0:
        pytest.skip("root can read any folder")
    ds = tmp_path / "ds"
    copy_input(ds / "sub-01" / "anat" / "sub-01_T2w.nii.gz")
    if how == "link-loop":
        (ds / "sub-02").symlink_to(ds / "sub-02")
    else:
        copy_input(ds / "sub-02" / "anat" / "sub-02_T2w.nii.gz")
        (ds / "sub-02").chmod(0)
    try:
        items, unreadable = scan([str(ds)], SCISEG)
        assert [it.path.name for it in items] == ["sub-01_T2w.nii.gz"]
        assert [u.path.name for u in unreadable] == ["sub-02"]
        r = run_cli("-i", ds, "-o", f"{tmp_path / 'out'}/", env=models_env(installed_model))
    finally:
        if how == "permissions":
            (ds / "sub-02").chmod(0o755)
    assert r.returncode == 1, r.stderr
    assert any(str(ds / "sub-02") in e and "cannot read this folder" in e for e in errors(r.stderr)), r.stderr
    assert "done: 1 segmented, 1 failed" in r.stdout
    assert (tmp_path / "out" / "sub-01" / "anat" / "sub-01_T2w_label-SC_seg.nii.gz").is_file()


def test_big_endian_nifti2_is_read(segmenter, tmp_path):
    src = nib.load(str(T2_FAKE_LESION))
    img = nib.Nifti2Image(np.asanyarray(src.dataobj), src.affine, nib.Nifti2Header(endianness=">"))
    img.set_qform(src.affine, code=1)
    img.set_sform(src.affine, code=1)
    p = tmp_path / "be2.nii"
    nib.save(img, str(p))
    assert p.read_bytes()[:4] == struct.pack(">i", 540)
    loaded = load_image(p)
    assert np.array_equal(np.asanyarray(loaded.dataobj), np.asanyarray(load_image(T2_FAKE_LESION).dataobj))
    ref, out = masks_of(segmenter.segment(T2_FAKE_LESION)), masks_of(segmenter.segment(p))
    assert all(np.array_equal(out[k], ref[k]) for k in ref)


def _patched(path: Path, offset: int, raw: bytes) -> Path:
    data = bytearray(path.read_bytes())
    data[offset:offset + len(raw)] = raw
    path.write_bytes(bytes(data))
    return path


def test_one_unusable_form_falls_back_to_the_other(segmenter, tmp_path):
    src = nib.load(str(T2_FAKE_LESION))
    data = np.asanyarray(src.dataobj)
    ref = masks_of(segmenter.segment(T2_FAKE_LESION))
    zero_sform = _patched(save(tmp_path / "zero_sform.nii", data, src.affine), 280, bytes(48))  # srow_x/y/z
    bad_qform = _patched(save(tmp_path / "bad_qform.nii", data, src.affine), 256, struct.pack("<fff", 1, 1, 1))
    for p in (zero_sform, bad_qform):
        img = load_image(p)
        assert np.allclose(img.affine, src.affine, atol=1e-4), p
        paths = segmenter.segment_file(p, tmp_path / f"{p.stem}_out.nii.gz")
        for k, path in paths.items():
            written = nib.load(str(path))
            assert np.array_equal(np.asanyarray(written.dataobj), ref[k]), (p, k)
            assert np.allclose(written.affine, src.affine, atol=1e-4)
            written.header.get_qform()  # usable on reading back


def test_fp16_on_a_cpu_without_native_fp16_is_announced():
    assert "80x slower" in fp16_cpu_warning({"avx2", "avx512f", "avx512_bf16"})
    assert fp16_cpu_warning({"avx512_fp16"}) is None and fp16_cpu_warning({"amx_fp16"}) is None
    code = ("from sct_task_sciseg.inference.settings import PredictorSettings, resolve; "
            "[resolve(PredictorSettings(device='cpu', precision='fp16')) for _ in range(2)]")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    expected = fp16_cpu_warning(cpu_flags())
    # once per process, through the package's logger (a script that configures no logging still sees it)
    assert r.stderr.count("-precision fp16 on this CPU") == (1 if expected else 0), r.stderr


# -- checks before anything loads (issue: late checks) ---------------------------------------------------------
def cli_in_python(args, env=None):
    code = ("import atexit, sys; atexit.register(lambda: print(sorted(m for m in ('torch', 'nnunetv2') "
            "if m in sys.modules))); from sct_task_sciseg.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, **(env or {})))


def test_path_problems_are_reported_before_torch_loads(installed_model, tmp_path):
    env = models_env(installed_model)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cases = [
        (["-i", tmp_path / "missing.nii.gz"], 1, "no such file"),
        (["-i", T2_FAKE_LESION, "-o", f"{tmp_path}/out/", "-qc", blocker / "qc"], 1, "cannot create the QC folder"),
        (["-i", T2_FAKE_LESION, "-o", blocker / "x.nii.gz"], 1, "is not a folder"),
        (["-i", T2_FAKE_LESION, "-o", "/proc/sciseg_out/"], 1, "cannot create the output folder"),
        (["-i", T2_FAKE_LESION, "-thr", "nan"], 2, "argument -thr"),
    ]
    for args, rc, fragment in cases:
        r = cli_in_python(args, env)
        assert r.returncode == rc and len(errors(r.stderr)) == 1 and fragment in r.stderr, (args, r.stderr)
        assert r.stdout.strip().splitlines()[-1] == "[]", (args, r.stdout)  # neither torch nor nnU-Net
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_pair_write_leaves_valid_sidecars_and_no_temporary_files(segmenter, tmp_path):
    paths = segmenter.segment_file(T2_FAKE_LESION, tmp_path / "X.nii.gz")
    for name, path in paths.items():
        meta = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert meta["GeneratedBy"] and nib.load(str(path)).shape == (99, 99, 29)
    assert len(list(tmp_path.iterdir())) == 4 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
