"""Speed modes and batch mode: exactness of -precision fp32, agreement of the fast paths, tiles, resume."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import T2_FAKE_LESION, needs_data, run_cli
from sct_task_sciseg.demo.phantom import dice
from sct_task_sciseg.inference.network import network_strides
from sct_task_sciseg.inference.roi import body_mask, bounding_box, large_tile
from sct_task_sciseg.inference.settings import PredictorSettings, resolve

pytestmark = needs_data

try:
    import openvino  # noqa: F401
    HAVE_OPENVINO = True
except ImportError:
    HAVE_OPENVINO = False


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SCISEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "export_cache"))


def _segmenter(installed_model, **kw):
    from sct_task_sciseg.pipeline import Segmenter
    return Segmenter(model_folder=installed_model.model_folder, threads=2, quiet=True, **kw)


def _model_space(img: nib.Nifti1Image, seg):
    from sct_task_sciseg.io.orientation import Reorientation
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    reo = Reorientation(img.affine, data.shape, seg.axcodes)
    arr = np.ascontiguousarray(reo.apply(data).transpose(2, 1, 0))
    return arr, reo.zooms(img.header.get_zooms()[:3])[::-1]


def _stock_predictor(model_folder: Path):
    """A plain nnUNetPredictor (no hooks), initialised by hand like nnU-Net does, SCT's settings."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from sct_task_sciseg.inference.network import build_network

    dataset_json = json.loads((model_folder / "dataset.json").read_text())
    pm = PlansManager(json.loads((model_folder / "plans.json").read_text()))
    ck = torch.load(str(next(model_folder.glob("fold_*/checkpoint_final.pth"))), map_location="cpu",
                    weights_only=False)
    cm = pm.get_configuration(ck["init_args"]["configuration"])
    net = build_network(cm.configuration, 1, pm.get_label_manager(dataset_json).num_segmentation_heads)
    p = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                        perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False)
    p.manual_initialization(net, pm, cm, [ck["network_weights"]], dataset_json, ck["trainer_name"],
                            ck.get("inference_allowed_mirroring_axes"))
    return p


# -- resolution of 'auto' -----------------------------------------------------------------------------------

def test_auto_resolution(monkeypatch):
    import sct_task_sciseg.inference.settings as pred
    exact = resolve(PredictorSettings(precision="fp32", device="cpu"))
    assert (exact.precision, exact.backend) == ("fp32", "torch")  # -precision fp32 = nnU-Net's own path
    monkeypatch.setattr(pred, "native_bf16", lambda: False)
    auto = resolve(PredictorSettings(device="cpu"))
    # the default is the exact path: nnU-Net's own PyTorch fp32, the same bits at every thread count
    assert (auto.precision, auto.backend, auto.channels_last) == ("fp32", "torch", False)
    assert resolve(PredictorSettings(device="cpu", backend="torch")).channels_last is False
    fast = resolve(PredictorSettings(device="cpu", fast=True))
    assert fast.precision == "fp32" and fast.backend == ("openvino" if HAVE_OPENVINO else "torch")
    assert fast.channels_last == (not HAVE_OPENVINO)  # -fast without OpenVINO: PyTorch's channels_last_3d
    monkeypatch.setattr(pred, "native_bf16", lambda: True)
    # a CPU with native bf16 still gets fp32 (SCT's arithmetic) by default; bf16 only when asked or with -fast
    assert resolve(PredictorSettings(device="cpu")).precision == "fp32"
    assert resolve(PredictorSettings(device="cpu", fast=True)).precision == "bf16"
    assert resolve(PredictorSettings(device="cpu", precision="bf16")).precision == "bf16"
    monkeypatch.setattr(pred, "native_bf16", lambda: False)
    assert resolve(PredictorSettings(device="cpu", fast=True)).precision == "fp32"  # emulated bf16 is slower
    assert resolve(PredictorSettings(device="cpu", threads=1)).threads == 1  # more than the CPUs: refused here
    with pytest.raises(ValueError, match="invalid precision"):
        resolve(PredictorSettings(precision="int8"))
    with pytest.raises(ValueError, match="onnxruntime supports precision fp32 only"):
        resolve(PredictorSettings(backend="onnxruntime", precision="bf16", device="cpu"))


def test_native_bf16_reads_cpu_flags(monkeypatch):
    import sct_task_sciseg.inference.settings as pred
    monkeypatch.setattr(pred, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert not pred.native_bf16()
    monkeypatch.setattr(pred, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert pred.native_bf16()
    monkeypatch.setattr(pred, "cpu_flags", lambda: {"amx_bf16"})
    assert pred.native_bf16()


# -- tiles and regions --------------------------------------------------------------------------------------

def test_large_tile_sizes():
    strides = network_strides({"patch_size": [128, 192, 96],
                               "pool_op_kernel_sizes": [[1, 1, 1]] + [[2, 2, 2]] * 4 + [[2, 2, 1]]})
    assert strides == [32, 32, 16]
    # SCIsegV2 geometry, sagittal 20×384×384 body crop: one tile instead of nnU-Net's twelve
    assert large_tile([279, 276, 73], [128, 192, 96], strides) == [288, 288, 80]
    # small image: fitted, not padded up to the training patch
    assert large_tile([115, 156, 34], [128, 192, 96], strides) == [128, 160, 48]
    # huge image: capped at 3 patches' worth of voxels, multiples of the strides
    tile = large_tile([600, 700, 500], [128, 192, 96], strides)
    assert np.prod(tile) <= 3 * 128 * 192 * 96
    assert all(t % s == 0 for t, s in zip(tile, strides))


def test_body_mask_and_box():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (60, 80, 40)).astype(np.float32) ** 2  # air: noise
    img[20:40, 30:60, 10:30] += 100  # body
    mask = body_mask(img)
    assert mask.shape == img.shape and mask[25, 40, 20]
    assert not mask[2, 2, 2] and not mask[58, 78, 38]
    box = bounding_box(mask, [2, 2, 2])
    assert box[0].start <= 18 and box[0].stop >= 42 and box[1].start <= 28 and box[1].stop >= 62
    assert box[0].start >= 10 and box[1].stop <= 70
    assert body_mask(rng.normal(100, 1, (40, 40, 40)).astype(np.float32) + 50) is None  # no air: no crop


# -- exactness and agreement ----------------------------------------------------------------------------------

def test_precision_fp32_is_voxel_identical_to_stock_nnunet(installed_model):
    """-precision fp32: the very same label map as a plain nnUNetPredictor on the same array."""
    from sct_task_sciseg.inference.loader import predict_labels
    seg = _segmenter(installed_model, precision="fp32")
    assert seg.resolved.backend == "torch" and seg.resolved.precision == "fp32"
    img = nib.load(str(T2_FAKE_LESION))
    arr, spacing = _model_space(img, seg)
    ours = np.asarray(predict_labels(seg.load(), arr, spacing))
    stock = np.asarray(predict_labels(_stock_predictor(installed_model.model_folder), arr, spacing))
    assert int((stock > 0).sum()) > 3000
    assert np.array_equal(ours, stock)


def test_default_is_exact_and_fast_agrees_with_it(installed_model):
    exact = _segmenter(installed_model, precision="fp32", crop="none").segment(T2_FAKE_LESION)
    default_seg = _segmenter(installed_model)
    default = default_seg.segment(T2_FAKE_LESION)
    fast = _segmenter(installed_model, fast=True).segment(T2_FAKE_LESION)
    ref = exact.labels > 0
    assert int(ref.sum()) > 3000
    assert default_seg.resolved.precision == "fp32"  # on every CPU, native bf16 or not
    assert np.array_equal(default.labels, exact.labels)  # the default is exact mode
    assert dice(fast.labels > 0, ref) >= 0.97 and dice(fast.labels == 2, exact.labels == 2) >= 0.97
    assert fast.stats["tiles"] == default.stats["tiles"]  # nnU-Net's tiles, every one of them


@pytest.mark.skipif(not HAVE_OPENVINO, reason="openvino not installed")
def test_openvino_and_onnxruntime_engines_agree(installed_model):
    ref = _segmenter(installed_model, precision="fp32", crop="none").segment(T2_FAKE_LESION).labels
    ov = _segmenter(installed_model, backend="openvino", crop="none")
    out = ov.segment(T2_FAKE_LESION)
    assert ov.resolved.backend == "openvino"
    assert out.stats["forward_calls"] == out.stats["tiles"]
    assert dice(out.labels > 0, ref > 0) >= 0.999
    # the exported network is cached: a second segmenter does not export again
    again = _segmenter(installed_model, backend="openvino", crop="none")
    assert np.array_equal(again.segment(T2_FAKE_LESION).labels, out.labels)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return
    ort = _segmenter(installed_model, backend="onnxruntime", precision="fp32", crop="none")
    assert dice(ort.segment(T2_FAKE_LESION).labels > 0, ref > 0) >= 0.999


def test_air_tiles_are_skipped_and_body_masks_unchanged(installed_model, tmp_path):
    """A scan with a wide band of air: all-air tiles are skipped, masks in the body are those of every tile."""
    img = nib.load(str(T2_FAKE_LESION))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    rng = np.random.default_rng(1)
    air = np.abs(rng.normal(0, 0.01 * data.max(), (data.shape[0], data.shape[1], 60))).astype(np.float32)
    wide = np.concatenate([data, air], axis=2)
    path = tmp_path / "wide.nii.gz"
    out = nib.Nifti1Image(wide, img.affine)
    out.set_qform(img.affine, 1)
    out.set_sform(img.affine, 1)
    nib.save(out, str(path))
    full = _segmenter(installed_model, precision="fp32", crop="none").segment(path)
    skip = _segmenter(installed_model, precision="fp32", crop="tiles").segment(path)
    assert full.stats["tiles_skipped"] == 0 and skip.stats["tiles_skipped"] > 0
    assert skip.stats["tiles"] + skip.stats["tiles_skipped"] == full.stats["tiles"]
    body = (slice(None), slice(None), slice(0, data.shape[2]))
    assert int((full.labels[body] > 0).sum()) > 3000
    assert np.array_equal(skip.labels[body], full.labels[body])
    body_crop = _segmenter(installed_model, precision="fp32", crop="body").segment(path)
    assert body_crop.stats["roi_shape"] != body_crop.stats["model_shape"]
    # another tile grid: masks in the body change a little (this model also predicts specks in air)
    assert dice(body_crop.labels[body] > 0, full.labels[body] > 0) >= 0.95


def test_two_fold_ensemble_with_exported_engine(installed_model, tmp_path):
    """Ensembles reload weights per fold; an exported engine follows them (and agrees with PyTorch)."""
    import torch
    folder = tmp_path / installed_model.model_folder.name
    shutil.copytree(installed_model.model_folder, folder)
    src = next(folder.glob("fold_*"))
    ck = torch.load(str(src / "checkpoint_final.pth"), map_location="cpu", weights_only=False)
    ck["network_weights"] = {k: v + 1.0 if "seg_layers" in k and k.endswith("bias") else v
                             for k, v in ck["network_weights"].items()}  # a fold that says "cord" more easily
    (folder / "fold_9").mkdir()
    torch.save(ck, str(folder / "fold_9" / "checkpoint_final.pth"))
    from sct_task_sciseg.pipeline import Segmenter
    single = Segmenter(model_folder=folder, threads=2, quiet=True, precision="fp32", crop="none",
                       folds=[int(src.name.split("_")[1])]).segment(T2_FAKE_LESION)
    one, one_tiles = single.labels, single.stats["tiles"]
    two_torch = Segmenter(model_folder=folder, threads=2, quiet=True, precision="fp32", crop="none")
    ref = two_torch.segment(T2_FAKE_LESION).labels
    assert len(two_torch.checkpoints) == 2
    assert int((ref > 0).sum()) > int((one > 0).sum())  # the second fold changes the ensemble
    if HAVE_OPENVINO:
        two_ov = Segmenter(model_folder=folder, threads=2, quiet=True, backend="openvino", crop="none")
        out = two_ov.segment(T2_FAKE_LESION)
        assert out.stats["forward_calls"] == out.stats["tiles"] == 2 * one_tiles  # every tile, per fold
        assert dice(out.labels > 0, ref > 0) >= 0.999


def test_sidecar_records_resolved_parameters(installed_model, tmp_path):
    seg = _segmenter(installed_model, fast=True)
    paths = seg.segment_file(T2_FAKE_LESION, tmp_path / "x.nii.gz")
    side = json.loads(Path(str(paths["sc"])[:-7] + ".json").read_text())
    params = side["GeneratedBy"][0]["Parameters"]
    assert params["fast"] is True and params["crop"] == "none" and params["tiles"] == "patch"
    assert params["precision"] in ("fp32", "bf16") and params["backend"] in ("torch", "openvino")
    exact = _segmenter(installed_model, precision="fp32")
    assert exact.provenance(None)["GeneratedBy"][0]["Parameters"]["backend"] == "torch"


# -- batch ----------------------------------------------------------------------------------------------------

def _bids(root: Path) -> dict:
    files = {
        "s1": root / "sub-01" / "anat" / "sub-01_T2w.nii.gz",
        "s2": root / "sub-02" / "ses-01" / "anat" / "sub-02_ses-01_T2w.nii.gz",
        "bad": root / "sub-03" / "anat" / "sub-03_T2w.nii.gz",
    }
    for key, p in files.items():
        p.parent.mkdir(parents=True)
        if key == "bad":
            p.write_bytes(b"not an image")
        else:
            shutil.copy(T2_FAKE_LESION, p)
    (root / "sub-01" / "anat" / "sub-01_T1w.nii.gz").write_bytes(T2_FAKE_LESION.read_bytes())  # not T2w
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.8.0"}')
    return files


def test_expand_bids_and_folders(tmp_path):
    from sct_task_sciseg.batch import expand
    from sct_task_sciseg.tasks import SCISEG
    files = _bids(tmp_path / "ds")
    found = expand([str(tmp_path / "ds")], SCISEG)
    assert [it.path for it in found] == sorted([files["s1"], files["s2"], files["bad"]])
    assert all(it.root == tmp_path / "ds" for it in found)
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(T2_FAKE_LESION, flat / "a.nii.gz")
    shutil.copy(T2_FAKE_LESION, flat / "a_sc_seg.nii.gz")
    assert [it.path.name for it in expand([str(flat), str(flat / "a.nii.gz")], SCISEG)] == ["a.nii.gz"]


def test_batch_bids_mirrors_tree_isolates_failures_and_resumes(installed_model, tmp_path):
    files = _bids(tmp_path / "ds")
    deriv = tmp_path / "ds" / "derivatives" / "sciseg"
    env = {"SCISEG_MODELS_DIR": str(installed_model.path.parent.parent),
           "SCISEG_CACHE_DIR": str(tmp_path / "cache")}
    r = run_cli("-i", tmp_path / "ds", "-o", f"{deriv}/", "-threads", "2", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    out1 = deriv / "sub-01" / "anat" / "sub-01_T2w_label-SC_seg.nii.gz"  # a BIDS dataset's scans: BIDS names
    out2 = deriv / "sub-02" / "ses-01" / "anat" / "sub-02_ses-01_T2w_label-lesion_seg.nii.gz"
    assert out1.is_file() and out2.is_file()
    assert not (deriv / "sub-03").exists() or not list((deriv / "sub-03").rglob("*.nii.gz"))
    assert np.asanyarray(nib.load(str(out1)).dataobj).sum() > 3000
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("sciseg: error:")]
    assert len(errors) == 1 and str(files["bad"]) in errors[0] and "not a NIfTI image" in errors[0]
    assert "done: 2 segmented, 1 failed, 0 skipped" in r.stdout
    table = r.stdout[r.stdout.index("status"):]
    assert "failed" in table and "not a NIfTI image" in table
    mtime = out1.stat().st_mtime_ns
    # resume: the two done inputs are skipped, the failed one is tried again
    r = run_cli("-i", tmp_path / "ds", "-o", f"{deriv}/", "-threads", "2", env=env)
    assert "done: 0 segmented, 1 failed, 2 skipped" in r.stdout, r.stdout
    assert out1.stat().st_mtime_ns == mtime
    # a file given on its own keeps SCT's names; other parameters → recomputed; -overwrite → recomputed
    out1 = deriv / "sub-01" / "anat" / "sub-01_T2w_sc_seg.nii.gz"
    r = run_cli("-i", files["s1"], "-o", f"{deriv}/sub-01/anat/", "-tile-step-size", "0.5", env=env)
    assert r.returncode == 0 and out1.is_file()
    mtime = out1.stat().st_mtime_ns
    r = run_cli("-i", files["s1"], "-o", f"{deriv}/sub-01/anat/", "-tile-step-size", "0.6", env=env)
    assert r.returncode == 0 and out1.stat().st_mtime_ns != mtime
    side = json.loads((deriv / "sub-01" / "anat" / "sub-01_T2w_sc_seg.json").read_text())
    assert side["GeneratedBy"][0]["Parameters"]["tile_step_size"] == 0.6
    mtime = out1.stat().st_mtime_ns
    r = run_cli("-i", files["s1"], "-o", f"{deriv}/sub-01/anat/", "-tile-step-size", "0.6", env=env)
    assert out1.stat().st_mtime_ns == mtime and "skipped" in r.stdout
    r = run_cli("-i", files["s1"], "-o", f"{deriv}/sub-01/anat/", "-tile-step-size", "0.6", "-overwrite", env=env)
    assert r.returncode == 0 and out1.stat().st_mtime_ns != mtime
    # beside the inputs when no -o is given
    r = run_cli("-i", files["s1"], files["s2"], env=env)
    assert (files["s1"].parent / "sub-01_T2w_sc_seg.nii.gz").is_file()
    assert (files["s2"].parent / "sub-02_ses-01_T2w_lesion_seg.json").is_file()
    assert not [p for p in (tmp_path / "ds").rglob("*") if ".tmp" in p.name]
