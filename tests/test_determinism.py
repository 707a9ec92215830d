"""The default's masks do not depend on where or how wide they are computed: the same bits at 1, 2 and 3
threads, in this process and on one-thread Dask workers (real processes), on the shared volumes; and -fast's
agreement with them."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import DATA, T2_FAKE_LESION, needs_data
from sct_task_sciseg.demo.phantom import dice

pytestmark = needs_data
VOLUMES = {"t2_fake_lesion": T2_FAKE_LESION, "t2": DATA / "t2" / "t2.nii.gz", "t2s": DATA / "t2s" / "t2s.nii.gz",
           "t1w": DATA / "t1" / "t1w.nii.gz", "mt1": DATA / "mt" / "mt1.nii.gz"}


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SCISEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "export_cache"))


class _TorchThreads:
    def __init__(self, threads: int):
        self.threads = threads

    def __enter__(self):
        import torch
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        import torch
        torch.set_num_threads(self.before)


def _segmenter(installed_model, threads: int, **kw):
    from sct_task_sciseg.pipeline import Segmenter
    return Segmenter(model_folder=installed_model.model_folder, threads=threads, quiet=True, **kw)


@pytest.fixture(scope="module")
def default_masks(installed_model):
    """Default-mode label maps of every shared volume at 1 and 2 threads (torch set to the same count)."""
    out = {}
    for threads in (1, 2):
        seg = _segmenter(installed_model, threads)
        assert (seg.resolved.backend, seg.resolved.precision, seg.resolved.channels_last) == ("torch", "fp32", False)
        with _TorchThreads(threads):
            for name, path in VOLUMES.items():
                out[(threads, name)] = seg.segment(path).labels
    return out


def test_network_logits_are_the_same_bits_at_any_thread_count(installed_model):
    """The default's network: bit-identical logits at 1, 2 and 3 threads (one thread used to run the 1×1×1
    segmentation head through another PyTorch kernel: logits 3.8e-6 apart)."""
    import torch
    seg = _segmenter(installed_model, 2)
    predictor = seg.load()
    engine = predictor.network
    patch = [int(p) for p in predictor.configuration_manager.patch_size]
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 1, (1, 1, *patch)).astype(np.float32))
    logits = {}
    for threads in (1, 2, 3):
        with _TorchThreads(threads), torch.inference_mode():
            logits[threads] = engine(x).numpy().copy()
    assert float(np.abs(logits[2]).max()) > 1.0  # real logits, not a constant
    assert np.array_equal(logits[1], logits[2]) and np.array_equal(logits[3], logits[2])


def test_default_masks_identical_at_1_and_2_threads_and_to_exact_mode(installed_model, default_masks):
    exact = _segmenter(installed_model, 2, precision="fp32")
    with _TorchThreads(2):
        for name, path in VOLUMES.items():
            one, two = default_masks[(1, name)], default_masks[(2, name)]
            assert int((two > 0).sum()) > 400, name  # mt1: 463, the smallest
            assert (int((one > 0).sum()), int((one == 2).sum())) == (int((two > 0).sum()), int((two == 2).sum())), name
            assert np.array_equal(one, two), name
            assert np.array_equal(exact.segment(path).labels, two), name


def test_one_thread_dask_workers_give_the_in_process_masks(installed_model, default_masks, tmp_path):
    """A LocalCluster of two one-thread worker processes writes the masks this process computes at 2 threads."""
    pytest.importorskip("distributed")
    import nibabel as nib
    from sct_task_sciseg import segment_many

    models_dir = str(installed_model.path.parent.parent)
    jobs = segment_many([str(p) for p in VOLUMES.values()], f"{tmp_path}/", scheduler="local", workers=2,
                        threads=1, models_dir=models_dir, quiet=True)
    assert [j.status for j in jobs] == ["done"] * len(VOLUMES), [j.reason for j in jobs]
    assert len({j.stats["worker"] for j in jobs}) == 2  # both workers segmented
    for name in VOLUMES:
        ref = default_masks[(2, name)]
        sc = np.asanyarray(nib.load(str(tmp_path / f"{name}_sc_seg.nii.gz")).dataobj)
        lesion = np.asanyarray(nib.load(str(tmp_path / f"{name}_lesion_seg.nii.gz")).dataobj)
        assert (int(sc.sum()), int(lesion.sum())) == (int((ref > 0).sum()), int((ref == 2).sum())), name
        assert np.array_equal(sc > 0, ref > 0) and np.array_equal(lesion > 0, ref == 2), name


def test_fast_agrees_with_exact_mode(installed_model, default_masks):
    """-fast (OpenVINO; bf16 where the CPU has it natively): cord Dice ≥ 0.97 against exact mode."""
    fast = _segmenter(installed_model, 2, fast=True)
    assert fast.resolved.crop == "none" and fast.resolved.tiles == "patch"
    with _TorchThreads(2):
        for name, path in VOLUMES.items():
            got, ref = fast.segment(path).labels, default_masks[(2, name)]
            assert dice(got > 0, ref > 0) >= 0.97, name
