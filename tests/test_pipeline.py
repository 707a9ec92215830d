"""Real nnU-Net inference through the pipeline: geometry, label split, headers, sidecars, CLI."""
from __future__ import annotations

import hashlib
import itertools
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

from conftest import DATA, T2_FAKE_LESION, needs_data, run_cli
from sct_task_sciseg.io.orientation import Reorientation, sct_to_nib_axcodes
from sct_task_sciseg.demo.phantom import dice
from sct_task_sciseg.pipeline.postprocess import PostProcessing, apply
from sct_task_sciseg.tasks import SCISEG

pytestmark = needs_data


def all_orientations():
    """The 48 axis orientations: 3! permutations × 8 flips, as nibabel ornt arrays."""
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            yield np.array([[perm[i], flips[i]] for i in range(3)], dtype=float)


def reoriented(img: nib.Nifti1Image, ornt: np.ndarray) -> nib.Nifti1Image:
    data = np.asanyarray(img.dataobj)
    out = nib.Nifti1Image(apply_orientation(data, ornt), img.affine @ inv_ornt_aff(ornt, data.shape))
    out.set_qform(out.affine, code=1)
    out.set_sform(out.affine, code=1)
    return out


def back_to(mask: nib.Nifti1Image, reference: nib.Nifti1Image) -> np.ndarray:
    """``mask`` resampled-free onto the reference grid (exact axis permutation/flip)."""
    xf = ornt_transform(io_orientation(mask.affine), io_orientation(reference.affine))
    data = apply_orientation(np.asanyarray(mask.dataobj), xf)
    assert np.allclose(mask.affine @ inv_ornt_aff(xf, mask.shape), reference.affine, atol=1e-4)
    return data


def test_sct_orientation_convention():
    assert sct_to_nib_axcodes("RPI") == ("L", "A", "S")
    assert sct_to_nib_axcodes("LAS") == ("R", "P", "I")
    with pytest.raises(ValueError):
        sct_to_nib_axcodes("RRI")


def test_model_space_array_is_identical_in_all_48_orientations():
    img = nib.load(str(T2_FAKE_LESION))
    ref = None
    for ornt in all_orientations():
        moved = reoriented(img, ornt)
        reo = Reorientation(moved.affine, moved.shape, ("L", "A", "S"))
        arr = reo.apply(np.asanyarray(moved.dataobj))
        if ref is None:
            ref = arr
            assert nib.aff2axcodes(reo.reoriented_affine()) == ("L", "A", "S")
        assert np.array_equal(arr, ref)


def test_equivariance_all_48_orientations(segmenter):
    """Same world-space masks whatever the input's axis order and directions."""
    img = nib.load(str(T2_FAKE_LESION))
    base = segmenter.segment(img)
    ref_sc = np.asanyarray(base.masks["sc"].dataobj)
    ref_les = np.asanyarray(base.masks["lesion"].dataobj)
    assert ref_sc.sum() > 3000 and ref_les.sum() > 20
    n = 0
    for ornt in all_orientations():
        moved = reoriented(img, ornt)
        out = segmenter.segment(moved)
        for name, ref in (("sc", ref_sc), ("lesion", ref_les)):
            mask = out.masks[name]
            assert np.allclose(mask.affine, moved.affine)
            assert np.array_equal(back_to(mask, img), ref), (ornt.tolist(), name)
        n += 1
    assert n == 48


def test_matches_sciseg_reference_masks(segmenter):
    """The phantom model was trained to reproduce SCIsegV2's masks of t2_fake_lesion."""
    out = segmenter.segment(T2_FAKE_LESION)
    ref_sc = nib.load(str(DATA / "t2" / "t2_fake_lesion_sc_seg.nii.gz")).get_fdata() > 0
    ref_les = nib.load(str(DATA / "t2" / "t2_fake_lesion_lesion_seg.nii.gz")).get_fdata() > 0
    sc = np.asanyarray(out.masks["sc"].dataobj)
    les = np.asanyarray(out.masks["lesion"].dataobj)
    assert dice(sc, ref_sc) > 0.9
    assert dice(les, ref_les) > 0.5
    assert not np.any(les & ~sc.astype(bool))  # lesion ⊂ cord


def test_label_split_dtype_and_header(segmenter):
    img = nib.load(str(T2_FAKE_LESION))
    out = segmenter.segment(T2_FAKE_LESION)
    assert set(np.unique(out.labels)) <= {0, 1, 2}
    sc, les = (np.asanyarray(out.masks[k].dataobj) for k in ("sc", "lesion"))
    assert np.array_equal(sc, (out.labels >= 1).astype(np.uint8))
    assert np.array_equal(les, (out.labels == 2).astype(np.uint8))
    for mask in out.masks.values():
        assert mask.get_data_dtype() == np.uint8 and mask.shape == img.shape
        assert np.array_equal(mask.affine, img.affine)
        for code in ("qform_code", "sform_code"):
            assert int(mask.header[code]) == int(img.header[code])
        assert np.allclose(mask.get_qform(), img.get_qform()) and np.allclose(mask.get_sform(), img.get_sform())
        assert mask.header.get_xyzt_units() == img.header.get_xyzt_units()


def test_spacing_order_matches_nnunet_file_based_prediction(segmenter, tmp_path):
    """On the anisotropic t2s (0.5×0.5×7.5 mm, already RPI), in-memory == nnU-Net's own file pipeline."""
    src = DATA / "t2s" / "t2s.nii.gz"
    assert nib.aff2axcodes(nib.load(str(src)).affine) == ("L", "A", "S")
    case = tmp_path / "in"
    case.mkdir()
    shutil.copy(src, case / "t2s_0000.nii.gz")
    (tmp_path / "out").mkdir()
    predictor = segmenter.load()
    plans_io = predictor.plans_manager.plans["image_reader_writer"]
    assert plans_io == "SimpleITKIO"
    if hasattr(predictor, "predict_from_files_sequential"):
        predictor.predict_from_files_sequential(str(case), str(tmp_path / "out"), False, True, None)
    else:  # nnunetv2 < 2.5
        predictor.predict_from_files(str(case), str(tmp_path / "out"), save_probabilities=False,
                                     overwrite=True, num_processes_preprocessing=1,
                                     num_processes_segmentation_export=1)
    theirs = np.asanyarray(nib.load(str(tmp_path / "out" / "t2s.nii.gz")).dataobj)
    ours = segmenter.segment(src).labels
    assert theirs.shape == ours.shape
    assert int((ours > 0).sum()) > 50
    assert np.array_equal(ours, theirs)
    # the bug this guards against: spacing in (x, y, z) order with a (z, y, x) array
    from sct_task_sciseg.inference.loader import predict_labels
    data = np.asanyarray(nib.load(str(src)).dataobj).astype(np.float32)
    wrong = predict_labels(predictor, data.transpose(2, 1, 0), nib.load(str(src)).header.get_zooms()[:3])
    assert not np.array_equal(np.asarray(wrong).transpose(2, 1, 0), ours)


def test_postprocessing_is_class_aware():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:12, 2:12, 2:12] = 1
    labels[5:7, 5:7, 5:7] = 2           # lesion 8 voxels in the big cord
    labels[15:17, 15:17, 15:17] = 2     # isolated lesion-only blob (small component)
    labels[4:6, 8:10, 8:10] = 2         # second lesion, 8 voxels
    labels[7, 7, 7] = 0                 # a hole in the cord... enclosed
    largest = apply(labels, PostProcessing(largest=True), 1.0, SCISEG.labels)
    assert largest[15, 15, 15] == 0 and largest[5, 5, 5] == 2 and largest[4, 8, 8] == 2  # both lesions stay
    filled = apply(labels, PostProcessing(fill_holes=True), 1.0, SCISEG.labels)
    assert filled[7, 7, 7] == 1
    small = apply(labels, PostProcessing(remove_small=["9vox"]), 1.0, SCISEG.labels)
    assert small[5, 5, 5] == 1 and small[15, 15, 15] == 1  # lesions dropped, cord kept
    big_vox = apply(labels, PostProcessing(remove_small=["lesion:0.5mm3"]), 0.1, SCISEG.labels)  # 8 vox: 0.8 mm3
    assert big_vox[5, 5, 5] == 2
    cord_small = apply(labels, PostProcessing(remove_small=["sc:100vox"]), 1.0, SCISEG.labels)
    assert cord_small[15, 15, 15] == 0 and cord_small[5, 5, 5] == 2


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_cli_end_to_end_from_loopback_mirror(server, tmp_path):
    """`sciseg -i` with the model auto-installed from a mirror; outputs, sidecars, input untouched."""
    src = tmp_path / "sub-01_T2w.nii"  # uncompressed input works too
    nib.save(nib.load(str(T2_FAKE_LESION)), str(src))
    before = sha(src)
    env = {"SCISEG_RELEASE_URL": server.url, "SCISEG_MODELS_DIR": str(tmp_path / "m")}
    r = run_cli("-i", src, "-task", "seg_sc_lesion_t2w_sci", "-threads", "2", env=env)
    assert r.returncode == 0, r.stderr
    assert "not installed yet: installing it now" in r.stderr
    sc_path, les_path = tmp_path / "sub-01_T2w_sc_seg.nii.gz", tmp_path / "sub-01_T2w_lesion_seg.nii.gz"
    sc, les = nib.load(str(sc_path)), nib.load(str(les_path))
    assert sc.get_data_dtype() == np.uint8 and np.array_equal(sc.affine, nib.load(str(src)).affine)
    assert np.asanyarray(sc.dataobj).sum() > 3000 and np.asanyarray(les.dataobj).sum() > 20
    side = json.loads((tmp_path / "sub-01_T2w_sc_seg.json").read_text())
    gen = side["GeneratedBy"][0]
    assert gen["Task"] == "seg_sc_lesion_t2w_sci" and gen["Release"] == "r20240729"
    assert gen["ModelURL"] == f"{server.url}/r20240729/model_SCIsegV2_r20240729.zip"
    assert len(gen["ModelSHA256"]) == 64 and gen["nnUNetVersion"]
    assert gen["Parameters"]["tile_step_size"] == 0.5 and gen["Parameters"]["test_time_aug"] is False
    assert side["Sources"] == ["sub-01_T2w.nii"] and side["SourceSHA256"] == before
    assert side["Output"] == "sc" and side["Labels"] == [1, 2]
    assert sha(src) == before
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    # -o X.nii.gz naming, and the same masks a second time with no network
    (tmp_path / "out").mkdir()
    r = run_cli("-i", src, "-o", tmp_path / "out" / "X.nii.gz", env=env)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asanyarray(nib.load(str(tmp_path / "out" / "X_sc_seg.nii.gz")).dataobj),
                          np.asanyarray(sc.dataobj))
    assert (tmp_path / "out" / "X_lesion_seg.nii.gz").is_file()
    assert server.gets("/r20240729/model_SCIsegV2_r20240729.zip") == 1


def test_help_and_list_tasks_do_not_import_torch(tmp_path):
    import subprocess
    import sys
    code = ("import sys; from sct_task_sciseg.cli import main; main(['-list-tasks']); "
            "assert 'torch' not in sys.modules and 'nnunetv2' not in sys.modules, 'heavy import'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = run_cli("-h")
    assert r.returncode == 0 and "-install-task" in r.stdout and "-largest" in r.stdout
