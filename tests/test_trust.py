"""Nothing from a download runs as code, and installed weights are the recorded ones: payload checkpoints,
dropped-in folds, swapped checkpoints, replaced releases and malformed model folders, on real release zips
served from 127.0.0.1 and real processes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import V2, run_cli, sct_pythons
from model_zips import FOLDER, rezip, unpack
from release_server import ReleaseServer
from sct_task_sciseg.errors import InstallError, ModelError
from sct_task_sciseg.tasks import SCISEG
from sct_task_sciseg.weights import find_installed, install

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
CKPT = f"{FOLDER}/fold_1/checkpoint_final.pth"


class Payload:
    """Unpickling this runs ``touch <marker>``: what a hostile checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)



def edit_checkpoint(folder: Path, change) -> Path:
    """Re-save fold_1's checkpoint as ``change(checkpoint)`` returns it."""
    ck_path = folder / "fold_1" / "checkpoint_final.pth"
    ck = torch.load(str(ck_path), map_location="cpu", weights_only=True)
    torch.save(change(ck), str(ck_path))
    return ck_path


def payload_folder(release_zip: Path, tmp: Path, marker: Path) -> Path:
    def add(ck):
        ck["init_args"]["note"] = Payload(marker)
        return ck
    folder = unpack(release_zip, tmp)
    edit_checkpoint(folder, add)
    return folder


def small_image(path: Path) -> Path:
    img = nib.Nifti1Image(np.random.default_rng(0).random((24, 24, 12)).astype(np.float32), np.diag([1, 1, 2, 1]))
    img.set_qform(img.affine, code=1)
    nib.save(img, str(path))
    return path


def error_lines(stderr: str):
    return [ln for ln in stderr.splitlines() if ln.startswith("sciseg: error:")]


# -- 1. payload checkpoints -------------------------------------------------------------------------------
def test_payload_release_from_loopback_is_refused_at_install_and_never_runs(tmp_path, release_zip):
    marker = tmp_path / "payload-ran"
    (tmp_path / "mirror").mkdir()
    rezip(payload_folder(release_zip, tmp_path / "src", marker), tmp_path / "mirror" / "evil.zip")
    models = tmp_path / "models"
    with ReleaseServer(tmp_path / "mirror") as srv:
        r = run_cli("-install-task", f"{SCISEG.name}@evil", "-custom-url", f"{srv.url}/evil.zip",
                    env={"SCISEG_MODELS_DIR": str(models)})
    assert r.returncode == 1
    errors = error_lines(r.stderr)
    assert len(errors) == 1, r.stderr
    assert f"{srv.url}/evil.zip: {CKPT}" in errors[0] and "posix.system" in errors[0]
    assert "Traceback" not in r.stderr
    assert not marker.exists()
    assert not (models / SCISEG.name / "evil").exists()


def test_payload_model_folder_is_refused_before_inference(tmp_path, release_zip):
    """A model folder run directly (no install record): refused by the loader itself, one line."""
    from sct_task_sciseg.pipeline import Segmenter

    marker = tmp_path / "payload-ran"
    folder = payload_folder(release_zip, tmp_path / "src", marker)
    seg = Segmenter(model_folder=folder, quiet=True)
    with pytest.raises(ModelError) as exc:
        seg.segment(np.random.default_rng(0).random((16, 16, 8)).astype(np.float32), affine=np.eye(4))
    assert str(exc.value).startswith(f"{folder / 'fold_1' / 'checkpoint_final.pth'}: refusing to load")
    assert "posix.system" in str(exc.value) and "\n" not in str(exc.value)
    assert not marker.exists()


def test_payload_in_an_installed_model_with_a_forged_record_is_refused_by_sciseg(tmp_path, release_zip):
    """Even with the install record rewritten to match, segmentation refuses the payload (exit 1, one line)."""
    models = tmp_path / "models"
    model = install(SCISEG, V2.tag, models_dir=models, source=str(release_zip), quiet=True)
    marker = tmp_path / "payload-ran"
    ck_path = payload_folder(release_zip, tmp_path / "src", marker) / "fold_1" / "checkpoint_final.pth"
    target = model.model_folder / "fold_1" / "checkpoint_final.pth"
    shutil.copyfile(ck_path, target)
    record_path = model.path / "sciseg_install.json"
    record = json.loads(record_path.read_text())
    st = target.stat()
    record["files"][f"{FOLDER}/fold_1/checkpoint_final.pth"] = [
        st.st_size, st.st_mtime_ns, hashlib.sha256(target.read_bytes()).hexdigest()]
    record_path.write_text(json.dumps(record))
    image = small_image(tmp_path / "t2.nii.gz")
    r = run_cli("-i", image, "-task", f"{SCISEG.name}@{V2.tag}", env={"SCISEG_MODELS_DIR": str(models)})
    assert r.returncode == 1
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and str(target) in errors[0] and "posix.system" in errors[0], r.stderr
    assert not marker.exists()
    assert not list(tmp_path.glob("t2_*seg*"))


def training_checkpoint():
    """What nnU-Net's trainer saves (``save_checkpoint``): numpy scalars in the log, a device, optimizer state."""
    w = {"conv.weight": torch.randn(2, 1, 3, 3, 3), "conv.bias": torch.zeros(2)}
    return {
        "network_weights": w,
        "optimizer_state": {"state": {0: {"momentum_buffer": torch.zeros(2)}},
                            "param_groups": [{"lr": 0.01, "momentum": 0.99, "nesterov": True, "foreach": None,
                                              "params": [0, 1]}]},
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.61), np.float32(0.7)], "ema_fg_dice": [np.float64(0.6)],
                    "dice_per_class_or_region": [[np.float64(0.9), np.float64(0.5)]], "lrs": [0.01]},
        "_best_ema": np.float64(0.6), "current_epoch": 1000,
        "init_args": {"plans": {"configurations": {}}, "configuration": "3d_fullres", "fold": 1,
                      "dataset_json": {}, "unpack_dataset": True, "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainerDA5", "inference_allowed_mirroring_axes": (0, 1, 2),
    }


@pytest.mark.parametrize("restricted", [True, False], ids=["own-unpickler", "weights-only"])
def test_both_torch_loaders_refuse_payloads_alone_and_load_real_checkpoints(tmp_path, restricted):
    from sct_task_sciseg.weights import checkpoint_file as cf

    if not restricted and not cf.weights_only_available(torch):
        pytest.skip("this torch has no scoped weights_only allow-list")
    marker = tmp_path / "payload-ran"
    good, bad = tmp_path / "good.pth", tmp_path / "bad.pth"
    torch.save(training_checkpoint(), str(good))
    torch.save(dict(training_checkpoint(), logging=Payload(marker)), str(bad))
    ck = cf.torch_load(good, restricted=restricted)
    assert float(ck["logging"]["mean_fg_dice"][1]) == pytest.approx(0.7)
    assert ck["init_args"]["device"] == torch.device("cpu") and ck["current_epoch"] == 1000
    with pytest.raises(Exception, match="system"):
        cf.torch_load(bad, restricted=restricted)
    assert not marker.exists()
    assert cf.read_checkpoint(good)["trainer_name"] == "nnUNetTrainerDA5"
    with pytest.raises(ModelError, match=r"bad\.pth: refusing to load this checkpoint: it needs the global "
                                         r"posix\.system"):
        cf.read_checkpoint(bad)
    assert not marker.exists()


@pytest.mark.parametrize("opcodes", ["stack-global", "memo"])
def test_the_scan_sees_globals_named_by_protocol_4_and_memo(tmp_path, opcodes):
    import pickle

    from sct_task_sciseg.weights import checkpoint_file as cf

    marker = tmp_path / "payload-ran"
    obj = [Payload(marker)] * 2 if opcodes == "memo" else Payload(marker)
    names = cf.pickle_globals(pickle.dumps(obj, protocol=4))
    assert "posix.system" in names
    assert cf.pickle_globals(pickle.dumps({"a": 1.0, "b": [1, 2]}, protocol=2)) == []


@pytest.mark.skipif(not sct_pythons(), reason="needs real SCT environments (SCISEG_SCT_PYTHON / SCISEG_SCT_PYTHONS)")
@pytest.mark.parametrize("python", sct_pythons() or [None], ids=str)
def test_payloads_refused_on_sct_torch(tmp_path, release_zip, python):
    """The same guarantees on SCT's own Python and torch (7.3: torch 2.2, 6.5: torch 2.5), this package
    from the working tree; a payload release served from 127.0.0.1 is refused at install there too."""
    (tmp_path / "mirror").mkdir()
    rezip(payload_folder(release_zip, tmp_path / "src", tmp_path / "install-payload-ran"),
          tmp_path / "mirror" / "evil.zip")
    env = dict(os.environ, PYTHONPATH=str(REPO), SCISEG_MODELS_DIR=str(tmp_path / "models"))
    with ReleaseServer(tmp_path / "mirror") as srv:
        r = subprocess.run([str(python), str(REPO / "tests" / "trust_child.py"), str(tmp_path / "child"),
                            f"{srv.url}/evil.zip"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["package"].startswith(str(REPO))
    assert result["good"] == {"own-unpickler": 0.7, "read_checkpoint": 0.7, "weights-only": 0.7} if \
        result["weights_only"] else result["good"] == {"own-unpickler": 0.7, "read_checkpoint": 0.7}
    assert all("system" in v for v in result["bad"].values()) and len(result["bad"]) >= 2
    assert "posix.system" in result["bad"]["read_checkpoint"]
    assert result["install_rc"] == 1 and "posix.system" in result["install_error"]
    assert CKPT in result["install_error"]
    assert "fold_1/checkpoint_final.pth: refusing to load" in result["segment_error"]
    assert "posix.system" in result["segment_error"]
    assert result["marker"] is False and not (tmp_path / "install-payload-ran").exists()


# -- 2. only the recorded files, with their recorded hashes -------------------------------------------------
@pytest.fixture
def installed(tmp_path, release_zip):
    return install(SCISEG, V2.tag, models_dir=tmp_path / "models", source=str(release_zip), quiet=True)


def test_a_fold_dropped_into_an_installed_model_is_refused(installed, tmp_path):
    from sct_task_sciseg.pipeline import Segmenter

    shutil.copytree(installed.model_folder / "fold_1", installed.model_folder / "fold_9")
    assert find_installed(SCISEG, V2.tag, models_dir=tmp_path / "models", full_check=True) == installed
    seg = Segmenter(SCISEG, V2.tag, models_dir=tmp_path / "models", quiet=True)
    with pytest.raises(ModelError) as exc:
        seg.load()
    msg = str(exc.value)
    assert msg.startswith(f"{installed.model_folder / 'fold_9' / 'checkpoint_final.pth'}: not part of release "
                          f"{V2.tag} as installed")
    shutil.rmtree(installed.model_folder / "fold_9")
    assert len(Segmenter(SCISEG, V2.tag, models_dir=tmp_path / "models", quiet=True).load().list_of_parameters) == 1


def test_a_same_size_swap_with_the_old_mtime_is_caught_before_unpickling(installed, tmp_path):
    from sct_task_sciseg.pipeline import Segmenter

    ck = installed.model_folder / "fold_1" / "checkpoint_final.pth"
    st = ck.stat()
    data = bytearray(ck.read_bytes())
    data[len(data) // 2] ^= 0x01
    ck.write_bytes(bytes(data))
    os.utime(ck, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (ck.stat().st_size, ck.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert find_installed(SCISEG, V2.tag, models_dir=tmp_path / "models") == installed  # size+mtime trusted
    with pytest.raises(ModelError, match=r"checkpoint_final\.pth: checkpoint changed since install \(sha256"):
        Segmenter(SCISEG, V2.tag, models_dir=tmp_path / "models", quiet=True).load()


def test_custom_url_force_cannot_silently_replace_a_recorded_release(server, tmp_path, monkeypatch, release_zip):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    models = tmp_path / "models"
    first = install(SCISEG, models_dir=models, quiet=True)  # records the release's sha256
    before = {p: p.read_bytes() for p in first.path.rglob("*") if p.is_file()}
    other_folder = unpack(release_zip, tmp_path / "other")
    edit_checkpoint(other_folder, lambda ck: dict(ck, current_epoch=1))
    other = rezip(other_folder, tmp_path / "other.zip")
    for source in (str(other), str(other_folder)):
        with pytest.raises(InstallError) as exc:
            install(SCISEG, V2.tag, models_dir=models, source=source, force=True, quiet=True)
        assert f"-task {SCISEG.name}@<tag> -custom-url" in str(exc.value)
        assert "recorded at first install" in str(exc.value)
    assert {p: p.read_bytes() for p in first.path.rglob("*") if p.is_file()} == before
    mine = install(SCISEG, "mine", models_dir=models, source=str(other), quiet=True)
    assert mine.custom and mine.sha256 == hashlib.sha256(other.read_bytes()).hexdigest()
    same = install(SCISEG, V2.tag, models_dir=models, source=str(release_zip), force=True, quiet=True)
    assert same.sha256 == first.sha256  # the release's own bytes from another place are fine


# -- 3. malformed model folders are refused at install ------------------------------------------------------
def _new_format_plans(folder: Path, class_name: str) -> None:
    from sct_task_sciseg.inference.network import _architecture

    plans = json.loads((folder / "plans.json").read_text())
    cfg = plans["configurations"]["3d_fullres"]
    _, kwargs, to_import = _architecture(cfg)
    cfg["architecture"] = {"network_class_name": class_name, "arch_kwargs": kwargs,
                           "_kw_requires_import": list(to_import)}
    (folder / "plans.json").write_text(json.dumps(plans))


MALFORMED = {
    "checkpoint-a-list": (lambda f: edit_checkpoint(f, lambda ck: [ck["network_weights"]]),
                          "holds a list, not an nnU-Net checkpoint"),
    "weights-a-string": (lambda f: edit_checkpoint(f, lambda ck: dict(ck, network_weights="weights")),
                         "network_weights is a str, not a state dict of tensors"),
    "class-builtins.dict": (lambda f: _new_format_plans(f, "builtins.dict"),
                            "plans.json: network_class_name 'builtins.dict' is not a class of "
                            "dynamic_network_architectures"),
    "class-os.system": (lambda f: _new_format_plans(f, "os.system"),
                        "plans.json: network_class_name 'os.system' is not a class of dynamic_network_architectures"),
    "wrong-configuration": (lambda f: edit_checkpoint(f, lambda ck: dict(
        ck, init_args=dict(ck["init_args"], configuration="2d"))), "trained for configuration '2d', not 3d_fullres"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_model_folder_refused_at_install_previous_kept(tmp_path, release_zip, case):
    models = tmp_path / "models"
    good = install(SCISEG, "mine", models_dir=models, source=str(unpack(release_zip, tmp_path / "good")), quiet=True)
    before = {p: p.read_bytes() for p in good.path.rglob("*") if p.is_file()}
    change, expected = MALFORMED[case]
    bad = unpack(release_zip, tmp_path / "bad")
    change(bad)
    r = run_cli("-install-task", f"{SCISEG.name}@mine", "-custom-url", bad.parent, "-force",
                env={"SCISEG_MODELS_DIR": str(models)})
    assert r.returncode == 1
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in r.stderr, r.stderr
    assert errors[0].startswith(f"sciseg: error: {bad.parent}: ")
    assert {p: p.read_bytes() for p in good.path.rglob("*") if p.is_file()} == before
    assert not [p for p in (models / SCISEG.name).iterdir() if p.name.startswith((".staging-", ".old-"))]


def test_new_format_plans_with_a_real_network_class_install_and_run(tmp_path, release_zip):
    """The control for the class checks above: nnU-Net's own class name in the new plans format works."""
    from sct_task_sciseg.pipeline import Segmenter

    folder = unpack(release_zip, tmp_path / "src")
    _new_format_plans(folder, "dynamic_network_architectures.architectures.unet.PlainConvUNet")
    model = install(SCISEG, "mine", models_dir=tmp_path / "models", source=str(folder.parent), quiet=True)
    seg = Segmenter(SCISEG, "mine", models_dir=tmp_path / "models", quiet=True)
    assert len(seg.load().list_of_parameters) == 1 and model.custom


def test_network_class_check_also_guards_loading(tmp_path, release_zip):
    from sct_task_sciseg.pipeline import Segmenter

    folder = unpack(release_zip, tmp_path / "src")
    _new_format_plans(folder, "os.system")
    with pytest.raises(ModelError, match="network_class_name 'os.system' is not a class of dynamic_network"):
        Segmenter(model_folder=folder, quiet=True).load()
