"""release/make_release.py on the model shipped inside the package (sct_task_sciseg/data)."""
import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "sct_task_sciseg" / "data"
EMBEDDED_ZIP = DATA / "sciseg_phantom_r20261124.zip"
EMBEDDED_JSON = DATA / "sciseg_phantom_r20261124.json"
TAG = "phantom-r20261124"
ASSET = "sciseg_phantom_r20261124.zip"
FOLDER = "nnUNetTrainerDA5__nnUNetPlans__3d_fullres"
KEEP = {"network_weights", "trainer_name", "init_args", "inference_allowed_mirroring_axes", "current_epoch"}

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not EMBEDDED_ZIP.exists(), reason="embedded phantom model missing")


def _load_make_release():
    spec = importlib.util.spec_from_file_location("make_release", ROOT / "release" / "make_release.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mr = _load_make_release()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def training_output(tmp_path):
    """The embedded model unzipped, then made to look like a raw nnU-Net training output folder."""
    root = tmp_path / "results"
    with zipfile.ZipFile(EMBEDDED_ZIP) as zf:
        zf.extractall(root)
    folder = root / FOLDER
    ck = folder / "fold_1" / "checkpoint_final.pth"
    checkpoint = torch.load(str(ck), map_location="cpu", weights_only=False)
    checkpoint["optimizer_state"] = {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": []}
    checkpoint["grad_scaler_state"] = {"scale": 1024.0}
    checkpoint["logging"] = {"train_losses": [0.9, 0.5]}
    checkpoint["_best_ema"] = 0.7
    torch.save(checkpoint, str(ck))
    (folder / "fold_1" / "checkpoint_latest.pth").write_bytes(b"junk")
    (folder / "fold_1" / "training_log.txt").write_text("log\n")
    (folder / "fold_1" / "progress.png").write_bytes(b"\x89PNG")
    (folder / "fold_1" / "validation").mkdir()
    (folder / "fold_1" / "validation" / "case.nii.gz").write_bytes(b"x")
    (folder / "fold_1" / "debug.json").write_text("{}")
    return root


def test_embedded_zip_is_a_single_root_model():
    with zipfile.ZipFile(EMBEDDED_ZIP) as zf:
        names = sorted(zf.namelist())
    assert names == [f"{FOLDER}/dataset.json", f"{FOLDER}/fold_1/checkpoint_final.pth", f"{FOLDER}/plans.json"]
    assert EMBEDDED_ZIP.stat().st_size < 5_000_000
    manifest = json.loads(EMBEDDED_JSON.read_text())
    assert manifest["sha256"] == _sha256(EMBEDDED_ZIP)
    assert manifest["size"] == EMBEDDED_ZIP.stat().st_size
    assert manifest["tag"] == TAG and manifest["asset"] == ASSET


def test_release_strips_and_describes(training_output, tmp_path):
    out = tmp_path / "out"
    manifest = mr.make_release(training_output, TAG, ASSET, out, quiet=True, created="2026-11-24T00:00:00Z")
    zpath = out / ASSET
    with zipfile.ZipFile(zpath) as zf:
        names = sorted(zf.namelist())
        assert {n.split("/")[0] for n in names} == {FOLDER}
        assert names == [f"{FOLDER}/dataset.json", f"{FOLDER}/fold_1/checkpoint_final.pth",
                         f"{FOLDER}/plans.json"]
        assert all(i.date_time == mr.ZIP_DATE for i in zf.infolist())
        ck_bytes = zf.read(f"{FOLDER}/fold_1/checkpoint_final.pth")
        ds = json.loads(zf.read(f"{FOLDER}/dataset.json"))
    import io

    ck = torch.load(io.BytesIO(ck_bytes), map_location="cpu", weights_only=False)
    assert set(ck) <= KEEP and {"network_weights", "trainer_name", "init_args"} <= set(ck)
    assert "optimizer_state" not in ck and "grad_scaler_state" not in ck and "logging" not in ck
    assert ck["trainer_name"] == "nnUNetTrainerDA5" and ck["init_args"]["configuration"] == "3d_fullres"
    assert ds["labels"] == {"background": 0, "sc": [1, 2], "lesion": 2}

    digest = _sha256(zpath)
    line = (out / f"{ASSET}.sha256").read_text()
    assert line == f"{digest}  {ASSET}\n"
    m = json.loads((out / "manifest.json").read_text())
    assert m == manifest
    assert m["tag"] == TAG and m["asset"] == ASSET and m["sha256"] == digest
    assert m["size"] == zpath.stat().st_size
    assert m["trainer"] == "nnUNetTrainerDA5" and m["configuration"] == "3d_fullres"
    assert m["folds"] == [1]
    assert m["labels"] == {"background": 0, "sc": [1, 2], "lesion": 2}
    assert m["regions_class_order"] == [1, 2]
    assert m["image_orientation"] == "RPI"
    assert m["nnunetv2"] and m["created"] == "2026-11-24T00:00:00Z"
    notes = (out / "RELEASE_NOTES.md").read_text()
    assert digest in notes and TAG in notes


def test_same_input_same_sha256(training_output, tmp_path):
    a = mr.make_release(training_output, TAG, ASSET, tmp_path / "a", quiet=True)
    b = mr.make_release(training_output / FOLDER, TAG, ASSET, tmp_path / "b", quiet=True)
    assert a["sha256"] == b["sha256"]
    assert (tmp_path / "a" / ASSET).read_bytes() == (tmp_path / "b" / ASSET).read_bytes()


def test_rebuilding_the_embedded_release_is_byte_identical(tmp_path):
    manifest = json.loads(EMBEDDED_JSON.read_text())
    if manifest.get("torch") != torch.__version__:
        pytest.skip("checkpoint bytes depend on the torch version that writes them")
    with zipfile.ZipFile(EMBEDDED_ZIP) as zf:
        zf.extractall(tmp_path / "x")
    m = mr.make_release(tmp_path / "x", TAG, ASSET, tmp_path / "out", quiet=True)
    assert m["sha256"] == manifest["sha256"]


def test_layout_and_cli(training_output, tmp_path, capsys):
    out, mirror = tmp_path / "out", tmp_path / "mirror"
    rc = mr.main([str(training_output), "--tag", TAG, "--asset", ASSET, "--out", str(out),
                  "--layout", str(mirror), "--repo", "someone/models"])
    assert rc == 0
    copy = mirror / TAG / ASSET
    assert copy.read_bytes() == (out / ASSET).read_bytes()
    assert (mirror / TAG / f"{ASSET}.sha256").read_text() == (out / f"{ASSET}.sha256").read_text()
    printed = capsys.readouterr().out
    assert (f"gh release create {TAG} {ASSET} {ASSET}.sha256 manifest.json --repo someone/models "
            f"--notes-file RELEASE_NOTES.md") in printed


def test_refuses_ambiguous_or_empty_folders(training_output, tmp_path):
    import shutil

    shutil.copytree(training_output / FOLDER, training_output / "nnUNetTrainer__nnUNetPlans__3d_fullres")
    with pytest.raises(mr.ReleaseError, match="expected exactly one"):
        mr.make_release(training_output, TAG, ASSET, tmp_path / "o", quiet=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(mr.ReleaseError):
        mr.make_release(tmp_path / "empty", TAG, ASSET, tmp_path / "o", quiet=True)
    with pytest.raises(mr.ReleaseError):
        mr.make_release(training_output / FOLDER, TAG, "model.tar.gz", tmp_path / "o", quiet=True)
    assert mr.main([str(tmp_path / "empty"), "--tag", TAG, "--asset", ASSET, "--out", str(tmp_path / "o")]) == 2
