"""``-soft 1``: each output's probability map from the same single inference, on the input grid, consistent
with the masks at every threshold."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import T2_FAKE_LESION, needs_data, run_cli
from sct_task_sciseg.pipeline import PostProcessing, Segmenter


@needs_data
def test_soft_maps_are_probabilities_consistent_with_the_masks(segmenter):
    hard = segmenter.segment(T2_FAKE_LESION)
    soft_seg = Segmenter.from_config(segmenter.config.with_(extra_images=("soft",)))
    result = soft_seg.segment(T2_FAKE_LESION)
    assert sorted(result.extra_images) == ["lesion_soft", "sc_soft"]
    sc, lesion = (np.asanyarray(result.extra_images[k + "_soft"].dataobj) for k in ("sc", "lesion"))
    assert sc.dtype == np.float32 and sc.shape == hard.labels.shape
    assert 0.0 <= sc.min() and sc.max() <= 1.0 and lesion.max() > 0.5
    assert np.allclose(result.extra_images["sc_soft"].affine, hard.image.affine)
    # the default masks are unchanged by asking for probabilities (same single inference)
    assert np.array_equal(result.labels, hard.labels)
    # at any threshold, the -thr mask is soft >= thr (the cord includes the lesion)
    for thr in (0.3, 0.5, 0.7):
        at = Segmenter.from_config(soft_seg.config.with_(postprocessing=PostProcessing(thr=thr)))
        res = at.segment(T2_FAKE_LESION)
        s_sc, s_les = (np.asanyarray(res.extra_images[k + "_soft"].dataobj) for k in ("sc", "lesion"))
        assert np.array_equal(np.asanyarray(res.masks["sc"].dataobj) == 1, s_sc >= thr)
        assert np.array_equal(np.asanyarray(res.masks["lesion"].dataobj) == 1, s_les >= thr)
        assert np.array_equal(s_sc, sc) and np.array_equal(s_les, lesion)  # maps do not depend on -thr
    assert int((sc >= 0.3).sum()) > int((sc >= 0.7).sum()) > 3000


@needs_data
def test_cli_soft_writes_the_maps_with_sidecars(installed_model, tmp_path):
    env = {"SCISEG_MODELS_DIR": str(installed_model.model_folder.parents[2])}
    out = tmp_path / "scan.nii.gz"
    r = run_cli("-i", T2_FAKE_LESION, "-o", out, "-soft", "1", "-threads", "2", env=env)
    assert r.returncode == 0, r.stderr
    for name in ("sc", "lesion"):
        soft = tmp_path / f"scan_{name}_seg_soft.nii.gz"
        mask = tmp_path / f"scan_{name}_seg.nii.gz"
        img = nib.load(str(soft))
        assert img.get_data_dtype() == np.float32
        data = np.asanyarray(img.dataobj)
        assert np.array_equal(np.asanyarray(nib.load(str(mask)).dataobj) == 1, data > 0.5)  # nnU-Net: > 0.5
        meta = json.loads((tmp_path / f"scan_{name}_seg_soft.json").read_text())
        assert meta["Type"] == "probability" and meta["Output"] == name
    # a second run with the same flags is up to date
    again = run_cli("-i", T2_FAKE_LESION, "-o", out, "-soft", "1", "-threads", "2", "-v", "2", env=env)
    assert again.returncode == 0 and "up to date" in (again.stdout + again.stderr)


def test_extra_image_kinds_are_checked_and_each_has_a_producer():
    from sct_task_sciseg.errors import SettingError
    from sct_task_sciseg.io.outputs import IMAGE_KINDS
    from sct_task_sciseg.pipeline.config import SegmenterConfig
    from sct_task_sciseg.pipeline.extra_images import PRODUCERS

    assert set(PRODUCERS) == set(IMAGE_KINDS) == {"soft"}
    assert SegmenterConfig(extra_images=["soft", "soft"]).extra_images == ("soft",)
    assert SegmenterConfig(extra_images="soft").extra_images == ("soft",)
    with pytest.raises(SettingError, match="unknown kind 'sfot'; known: soft"):
        SegmenterConfig(extra_images=("sfot",))
