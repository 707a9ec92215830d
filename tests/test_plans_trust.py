"""No code from a model's plans.json or checkpoint names: every name nnU-Net would resolve (network class, the
torch parts of ``arch_kwargs``, the names nnU-Net looks up in its own package, the trainer) is checked against
an allow-list of exact names at install and again at load; payloads like
``torch.nn.modules.module.torch.os.system`` with ``nonlin_kwargs={"command": "touch MARKER"}`` never run."""
from __future__ import annotations

import hashlib
import json
import os
import pydoc
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import V2, run_cli, sct_python
from model_zips import FOLDER, rezip, unpack
from release_server import ReleaseServer
from sct_task_sciseg.errors import InstallError, ModelError
from sct_task_sciseg.tasks import SCISEG
from sct_task_sciseg.weights import install

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
PAYLOAD = "torch.nn.modules.module.torch.os.system"
DNA = "dynamic_network_architectures.architectures.unet.PlainConvUNet"



def new_format(cfg: dict) -> dict:
    """The new plans format (``architecture``) for the release's old-format configuration, as nnU-Net 2.4+
    planners write it."""
    n, dim = len(cfg["n_conv_per_stage_encoder"]), len(cfg["patch_size"])
    return {"network_class_name": DNA, "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
            "arch_kwargs": {
                "n_stages": n, "features_per_stage": [min(cfg["UNet_base_num_features"] * 2 ** i,
                                                          cfg["unet_max_num_features"]) for i in range(n)],
                "conv_op": f"torch.nn.modules.conv.Conv{dim}d", "kernel_sizes": cfg["conv_kernel_sizes"],
                "strides": cfg["pool_op_kernel_sizes"], "n_conv_per_stage": cfg["n_conv_per_stage_encoder"],
                "n_conv_per_stage_decoder": cfg["n_conv_per_stage_decoder"], "conv_bias": True,
                "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim}d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}}


def _arch(key):
    def change(plans, cfg, marker):
        arch = cfg["architecture"] = new_format(cfg)
        if key == "network_class_name":
            arch[key] = PAYLOAD
            arch["arch_kwargs"] = {"command": f"touch {marker}"}
        else:
            arch["arch_kwargs"][key] = PAYLOAD
            arch["arch_kwargs"][f"{key}_kwargs"] = {"command": f"touch {marker}"}
    return change


def _named(where, key, value=PAYLOAD):
    def change(plans, cfg, marker):
        (plans if where == "plans" else cfg)[key] = value
    return change


# key -> (change of plans.json, the name the refusal must quote)
PAYLOADS = {
    "network_class_name": (_arch("network_class_name"), PAYLOAD),
    "conv_op": (_arch("conv_op"), PAYLOAD),
    "norm_op": (_arch("norm_op"), PAYLOAD),
    "dropout_op": (_arch("dropout_op"), PAYLOAD),
    "nonlin": (_arch("nonlin"), PAYLOAD),
    "UNet_class_name": (_named("cfg", "UNet_class_name"), PAYLOAD),
    "preprocessor_name": (_named("cfg", "preprocessor_name", "os.system"), "os.system"),
    "resampling_fn_data": (_named("cfg", "resampling_fn_data", "posix.system"), "posix.system"),
    "resampling_fn_probabilities": (_named("cfg", "resampling_fn_probabilities", "system"), "system"),
    "normalization_schemes": (_named("cfg", "normalization_schemes", ["ZScoreNormalization", "Popen"]), "Popen"),
    "label_manager": (_named("plans", "label_manager", "os.system"), "os.system"),
    "image_reader_writer": (_named("plans", "image_reader_writer", PAYLOAD), PAYLOAD),
    "_kw_requires_import": (lambda p, c, m: (_arch("nonlin")(p, c, m), c["architecture"].update(
        _kw_requires_import=["nonlin", "block"]))[0], "block"),
}


def payload_folder(release_zip: Path, dest: Path, key: str, marker: Path) -> Path:
    folder = unpack(release_zip, dest)
    plans = json.loads((folder / "plans.json").read_text())
    PAYLOADS[key][0](plans, plans["configurations"]["3d_fullres"], marker)
    (folder / "plans.json").write_text(json.dumps(plans))
    return folder


def test_the_payload_is_live_code_for_an_import_path_lookup():
    """The control: the dotted name these tests use is os.system to nnU-Net's own lookup."""
    assert pydoc.locate(PAYLOAD) is os.system


@pytest.mark.parametrize("key", sorted(PAYLOADS))
def test_a_payload_in_each_plans_key_is_refused_at_install_and_at_load(tmp_path, release_zip, key):
    marker = tmp_path / "PWNED"
    folder = payload_folder(release_zip, tmp_path / "src", key, marker)
    name = PAYLOADS[key][1]
    with pytest.raises(InstallError) as exc:
        install(SCISEG, "evil", models_dir=tmp_path / "models", source=str(folder.parent), quiet=True)
    msg = str(exc.value)
    assert f"{FOLDER}/plans.json: " in msg and f"{key} " in msg and repr(name) in msg and "\n" not in msg, msg
    assert not (tmp_path / "models" / SCISEG.name / "evil").exists()
    from sct_task_sciseg.pipeline import Segmenter
    with pytest.raises(ModelError) as exc:
        Segmenter(model_folder=folder, quiet=True).segment(
            np.random.default_rng(0).random((16, 16, 8)).astype(np.float32), affine=np.eye(4))
    msg = str(exc.value)
    assert msg.startswith(f"{folder / 'plans.json'}: ") and f"{key} " in msg and repr(name) in msg, msg
    assert not marker.exists()


def test_a_reader_named_in_dataset_json_is_refused_at_install_and_at_load(tmp_path, release_zip):
    from sct_task_sciseg.pipeline import Segmenter

    folder = unpack(release_zip, tmp_path / "src")
    dataset = json.loads((folder / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps(dict(dataset, overwrite_image_reader_writer=PAYLOAD)))
    with pytest.raises(InstallError, match=rf"{FOLDER}/dataset.json: overwrite_image_reader_writer '{PAYLOAD}'"):
        install(SCISEG, "evil", models_dir=tmp_path / "models", source=str(folder.parent), quiet=True)
    with pytest.raises(ModelError, match=r"dataset.json: overwrite_image_reader_writer"):
        Segmenter(model_folder=folder, quiet=True).load()


def test_a_payload_trainer_name_is_refused_at_install(tmp_path, release_zip):
    folder = unpack(release_zip, tmp_path / "src")
    ck_path = folder / "fold_1" / "checkpoint_final.pth"
    ck = torch.load(str(ck_path), map_location="cpu", weights_only=True)
    torch.save(dict(ck, trainer_name="nnUNetTrainerEvil"), str(ck_path))
    with pytest.raises(InstallError, match=r"trainer_name 'nnUNetTrainerEvil' is not one of nnU-Net's trainer"):
        install(SCISEG, "evil", models_dir=tmp_path / "models", source=str(folder.parent), quiet=True)


def test_a_new_format_plans_with_nnunets_own_names_installs_and_segments(tmp_path, release_zip, segmenter):
    """The control: the same names nnU-Net's planners write (both torch spellings) build the same network."""
    from sct_task_sciseg.pipeline import Segmenter

    folder = unpack(release_zip, tmp_path / "src")
    plans = json.loads((folder / "plans.json").read_text())
    cfg = plans["configurations"]["3d_fullres"]
    cfg["architecture"] = new_format(cfg)
    (folder / "plans.json").write_text(json.dumps(plans))
    install(SCISEG, "mine", models_dir=tmp_path / "models", source=str(folder.parent), quiet=True)
    data = np.random.default_rng(1).random((24, 24, 12)).astype(np.float32)
    mine = Segmenter(SCISEG, "mine", models_dir=tmp_path / "models", threads=2, quiet=True).segment(
        data, affine=np.diag([1, 1, 2, 1]))
    ref = segmenter.segment(data, affine=np.diag([1, 1, 2, 1]))
    for k in ref.masks:
        assert np.array_equal(np.asarray(mine.masks[k].dataobj), np.asarray(ref.masks[k].dataobj))


def test_plans_tampered_after_install_with_a_forged_record_is_refused_by_sciseg(tmp_path, release_zip):
    models = tmp_path / "models"
    model = install(SCISEG, V2.tag, models_dir=models, source=str(release_zip), quiet=True)
    marker = tmp_path / "PWNED"
    target = model.model_folder / "plans.json"
    target.write_bytes((payload_folder(release_zip, tmp_path / "src", "nonlin", marker) / "plans.json").read_bytes())
    record_path = model.path / "sciseg_install.json"
    record = json.loads(record_path.read_text())
    st = target.stat()
    record["files"][f"{FOLDER}/plans.json"] = [st.st_size, st.st_mtime_ns,
                                               hashlib.sha256(target.read_bytes()).hexdigest()]
    record_path.write_text(json.dumps(record))
    from test_trust import small_image
    image = small_image(tmp_path / "t2.nii.gz")
    r = run_cli("-i", image, "-task", f"{SCISEG.name}@{V2.tag}", env={"SCISEG_MODELS_DIR": str(models)})
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("sciseg: error:")]
    assert len(errors) == 1 and str(target) in errors[0] and f"nonlin {PAYLOAD!r}" in errors[0], r.stderr
    assert not marker.exists() and not list(tmp_path.glob("t2_*"))


def test_a_payload_release_served_over_http_is_refused_by_the_cli(tmp_path, release_zip):
    marker = tmp_path / "PWNED"
    (tmp_path / "mirror").mkdir()
    rezip(payload_folder(release_zip, tmp_path / "src", "nonlin", marker), tmp_path / "mirror" / "evil.zip")
    with ReleaseServer(tmp_path / "mirror") as srv:
        r = run_cli("-install-task", f"{SCISEG.name}@evil", "-custom-url", f"{srv.url}/evil.zip",
                    env={"SCISEG_MODELS_DIR": str(tmp_path / "models")})
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("sciseg: error:")]
    assert r.returncode == 1 and len(errors) == 1, r.stderr
    assert f"{FOLDER}/plans.json: architecture nonlin {PAYLOAD!r}" in errors[0]
    assert not marker.exists() and not (tmp_path / "models" / SCISEG.name / "evil").exists()


@pytest.mark.parametrize("name", ["6.5", "7.3"])
def test_plans_payloads_refused_on_sct_environments(tmp_path, release_zip, name):
    """The same refusals with SCT's own Python, torch and nnU-Net (this package from the working tree)."""
    python = sct_python(name)
    if python is None:
        pytest.skip(f"no SCT {name} among SCISEG_SCT_PYTHON / SCISEG_SCT_PYTHONS")
    check = subprocess.run([str(python), "-c", "import torch, nnunetv2, dynamic_network_architectures"],
                           capture_output=True)
    if check.returncode:
        pytest.skip(f"SCT {name} environment incomplete")
    marker = tmp_path / "PWNED"
    folders = {key: payload_folder(release_zip, tmp_path / key, key, marker) for key in ("nonlin", "conv_op")}
    code = (
        "import sys, json\n"
        "from sct_task_sciseg.weights import install\n"
        "from sct_task_sciseg.tasks import SCISEG\n"
        "from sct_task_sciseg.pipeline import Segmenter\n"
        "out = {}\n"
        "for key, folder in json.loads(sys.argv[1]).items():\n"
        "    res = []\n"
        "    for run in (lambda: install(SCISEG, 'evil', source=str(folder).rsplit('/', 1)[0], quiet=True),\n"
        "                lambda: Segmenter(model_folder=folder, quiet=True).load()):\n"
        "        try:\n"
        "            run(); res.append('ACCEPTED')\n"
        "        except Exception as exc:\n"
        "            res.append(f'{type(exc).__name__}: {exc}')\n"
        "    out[key] = res\n"
        "print(json.dumps(out))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), SCISEG_MODELS_DIR=str(tmp_path / "models"))
    r = subprocess.run([str(python), "-c", code, json.dumps({k: str(v) for k, v in folders.items()})],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    for key, (at_install, at_load) in result.items():
        assert at_install.startswith("InstallError: ") and f"architecture {key} {PAYLOAD!r}" in at_install
        assert at_load.startswith("ModelError: ") and f"architecture {key} {PAYLOAD!r}" in at_load
    assert not marker.exists()
