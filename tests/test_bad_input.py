"""Bad input: one clear line naming the file, a non-zero exit, nothing lost; odd-but-valid input works."""
from __future__ import annotations

import gzip
import hashlib
import os
import signal
import struct
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import T2_FAKE_LESION, needs_data, run_cli
from sct_task_sciseg.errors import InputError
from sct_task_sciseg.io.nifti import load_image

pytestmark = needs_data

PIXDIM_OFFSET = 76  # float32 pixdim[8] in the NIfTI-1 header
DIM_OFFSET = 40     # int16 dim[8]


def _base():
    img = nib.load(str(T2_FAKE_LESION))
    return np.asanyarray(img.dataobj), img.affine


def _save(path: Path, data, affine, dtype=None) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if dtype is not None:
        img.set_data_dtype(dtype)
    nib.save(img, str(path))
    return path


def _patch_header(path: Path, offset: int, fmt: str, value) -> Path:
    raw = bytearray(path.read_bytes())
    struct.pack_into("<" + fmt, raw, offset, value)
    path.write_bytes(bytes(raw))
    return path


def make_bad_inputs(d: Path) -> dict:
    """name → (path, expected fragment of the error line)."""
    data, aff = _base()
    cases = {}
    (d / "notes.txt").write_text("not an image\n")
    cases["not_nifti"] = (d / "notes.txt", "not a NIfTI image")
    (d / "fake.nii.gz").write_bytes(gzip.compress(b"hello world" * 100))
    cases["not_nifti_gz"] = (d / "fake.nii.gz", "not a NIfTI image")
    full = T2_FAKE_LESION.read_bytes()
    (d / "truncated.nii.gz").write_bytes(full[: len(full) // 2])
    cases["truncated_gz"] = (d / "truncated.nii.gz", "truncated or corrupt")
    cases["2d"] = (_save(d / "flat.nii.gz", data[:, :, 0], aff), "2D image")
    cases["4d"] = (_save(d / "fmri.nii.gz", np.stack([data] * 3, -1), aff), "4D image")
    (d / "empty.nii.gz").write_bytes(b"")
    cases["empty_file"] = (d / "empty.nii.gz", "empty file")
    cases["all_zero"] = (_save(d / "zeros.nii.gz", np.zeros_like(data), aff), "all voxels are 0")
    nan = data.astype(np.float32)
    nan[10, 10, 10] = np.nan
    cases["nan"] = (_save(d / "nan.nii.gz", nan, aff), "NaN or infinite")
    inf = data.astype(np.float32)
    inf[1, 2, 3] = np.inf
    cases["inf"] = (_save(d / "inf.nii.gz", inf, aff), "NaN or infinite")
    zero = _save(d / "zero_spacing.nii", data, aff)
    cases["zero_spacing"] = (_patch_header(zero, PIXDIM_OFFSET + 4 * 2, "f", 0.0), "invalid voxel size")
    neg = _save(d / "neg_spacing.nii", data, aff)
    cases["negative_spacing"] = (_patch_header(neg, PIXDIM_OFFSET + 4 * 1, "f", -0.8), "invalid voxel size")
    noform = nib.Nifti1Image(data, aff)
    noform.set_qform(None, code=0)
    noform.set_sform(None, code=0)
    nib.save(noform, str(d / "noform.nii.gz"))
    cases["no_sform_qform"] = (d / "noform.nii.gz", "no orientation in header")
    absurd = _save(d / "absurd.nii", data, aff)
    cases["absurd_dims"] = (_patch_header(absurd, DIM_OFFSET + 2, "h", 32000), "absurd header dimensions")
    cases["missing"] = (d / "does_not_exist.nii.gz", "no such file")
    (d / "a_folder.nii.gz").mkdir()
    cases["folder"] = (d / "a_folder.nii.gz", "is a folder")
    return cases


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""


@pytest.fixture
def bad_inputs(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    return make_bad_inputs(d)


def test_each_bad_input_raises_one_line(bad_inputs):
    assert len(bad_inputs) >= 15
    for name, (path, fragment) in bad_inputs.items():
        with pytest.raises(InputError) as exc:
            load_image(path)
        msg = str(exc.value)
        assert msg.startswith(str(path)), (name, msg)
        assert fragment in msg, (name, msg)
        assert "\n" not in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    p = tmp_path / "secret.nii.gz"
    p.write_bytes(T2_FAKE_LESION.read_bytes())
    p.chmod(0)
    with pytest.raises(InputError, match="not readable"):
        load_image(p)


def test_odd_but_valid_inputs_work(segmenter, tmp_path):
    data, aff = _base()
    ref = segmenter.segment(T2_FAKE_LESION)
    ref_sc = np.asanyarray(ref.masks["sc"].dataobj)
    # singleton 4th dimension
    p4 = _save(tmp_path / "singleton4d.nii.gz", data[..., None], aff)
    out = segmenter.segment(p4)
    assert out.masks["sc"].shape == data.shape and np.array_equal(np.asanyarray(out.masks["sc"].dataobj), ref_sc)
    # dtypes: float64 and int32 give the very same masks; uint8 (rescaled) still finds the cord
    for dtype in (np.float64, np.int32):
        p = _save(tmp_path / f"{np.dtype(dtype).name}.nii.gz", data.astype(dtype), aff, dtype)
        assert np.array_equal(np.asanyarray(segmenter.segment(p).masks["sc"].dataobj), ref_sc), dtype
    f = data.astype(np.float64)
    u8 = np.round(255 * (f - f.min()) / (f.max() - f.min())).astype(np.uint8)
    out = segmenter.segment(_save(tmp_path / "u8.nii.gz", u8, aff, np.uint8))
    from sct_task_sciseg.demo.phantom import dice
    assert dice(np.asanyarray(out.masks["sc"].dataobj), ref_sc) > 0.9
    # oblique affine: works and the masks carry the oblique geometry
    theta = np.deg2rad(20)
    rot = np.array([[1, 0, 0, 0], [0, np.cos(theta), -np.sin(theta), 0], [0, np.sin(theta), np.cos(theta), 0],
                    [0, 0, 0, 1]])
    oblique = rot @ aff
    out = segmenter.segment(_save(tmp_path / "oblique.nii.gz", data, oblique))
    assert np.allclose(out.masks["sc"].affine, oblique)
    assert dice(np.asanyarray(out.masks["sc"].dataobj), ref_sc) > 0.95
    # a single slice
    one = nib.load(str(_save(tmp_path / "one_slice.nii.gz", data[:, 49:50, :], aff)))
    out = segmenter.segment(one)
    assert out.masks["sc"].shape == (99, 1, 29) and out.masks["sc"].get_data_dtype() == np.uint8
    assert np.allclose(out.masks["sc"].affine, one.affine)
    assert set(np.unique(np.asanyarray(out.masks["sc"].dataobj))) <= {0, 1}  # (a 3D model sees little in it)


def test_cli_batch_isolates_failures_and_never_touches_inputs(installed_model, bad_inputs, tmp_path):
    good = tmp_path / "good.nii.gz"
    good.write_bytes(T2_FAKE_LESION.read_bytes())
    bad_inputs.pop("folder")  # a folder given to the CLI means "its NIfTI files"
    paths = [good] + [p for p, _ in bad_inputs.values()]
    before = {p: sha(p) for p in paths}
    out_dir = tmp_path / "out"
    env = {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}
    r = run_cli("-i", *paths, "-o", f"{out_dir}/", "-threads", "2", env=env)
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("sciseg: error:")]
    assert len(errors) == len(bad_inputs), r.stderr
    for path, fragment in bad_inputs.values():
        assert any(str(path) in e and fragment in e for e in errors), (path, fragment)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        ["good_sc_seg.nii.gz", "good_lesion_seg.nii.gz", "good_sc_seg.json", "good_lesion_seg.json"])
    assert f"done: 1 segmented, {len(bad_inputs)} failed" in r.stdout
    assert {p: sha(p) for p in paths} == before


def test_unwritable_output(installed_model, tmp_path):
    env = {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)}
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    r = run_cli("-i", T2_FAKE_LESION, "-o", blocker / "x.nii.gz", env=env)
    assert r.returncode == 1 and "is not a folder" in r.stderr
    r = run_cli("-i", T2_FAKE_LESION, "-o", "/proc/sciseg_out/", env=env)
    assert r.returncode != 0 and "/proc/sciseg_out" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_ctrl_c_leaves_no_partial_output(installed_model, tmp_path):
    """Ctrl-C in the middle of a run (once torch is loading: past the checks, before any output)."""
    from test_input_safety import slow_input, start_cli, wait_for_torch
    if not sys.platform.startswith("linux"):
        pytest.skip("watches /proc/PID/maps")
    src = slow_input(tmp_path / "in.nii.gz")
    before = sha(src)
    proc = start_cli(["-i", src, "-threads", "1"], {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent)})
    wait_for_torch(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.nii.gz"] and sha(src) == before
    assert "interrupted" in err and "Traceback" not in err, err
    assert len([ln for ln in err.splitlines() if ln.startswith("sciseg: error:")]) == 1, err


def test_readme_flag_table_and_help_list_the_same_flags():
    """Every flag of ``sciseg -h`` is in README's flag table and every flag there exists."""
    import argparse
    import re
    from pathlib import Path

    from sct_task_sciseg.cli.parser import build_parser

    parser = build_parser()
    flags = {opt for action in parser._actions if action.help != argparse.SUPPRESS
             for opt in action.option_strings if not opt.startswith("--")}
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split("| flag | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"`(-[a-z][a-z0-9-]*)", table))
    assert flags - documented == set(), "in -h, missing from README's flag table"
    assert documented - flags == set(), "in README's flag table, unknown to sciseg"
