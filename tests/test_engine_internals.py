"""What the speed and memory levers change inside: the exported graph, nnU-Net's import, threaded resampling."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, T2_FAKE_LESION, needs_data
from sct_task_sciseg.inference.export_view import SplitConcatUNet, export_view
from sct_task_sciseg.inference.network import build_network
from sct_task_sciseg.inference.nnunet_compat import _per_channel_threads
from sct_task_sciseg.inference.nnunet_compat import threaded_resampling as _threaded_resampling


def _phantom_network(installed_model):
    folder = installed_model.model_folder
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    pm = PlansManager(json.loads((folder / "plans.json").read_text()))
    ck = torch.load(str(next(folder.glob("fold_*/checkpoint_final.pth"))), map_location="cpu", weights_only=False)
    cm = pm.get_configuration("3d_fullres")
    net = build_network(cm.configuration, 1, 2)
    net.load_state_dict(ck["network_weights"])
    return net.eval(), cm


def test_split_concat_view_computes_the_same_function(installed_model):
    net, cm = _phantom_network(installed_model)
    view = export_view(net)
    assert isinstance(view, SplitConcatUNet)
    x = torch.randn(1, 1, *cm.patch_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, out = net(x), view(x)
    assert ref.shape == out.shape == (1, 2, *cm.patch_size)
    assert float((ref - out).abs().max()) < 1e-4 * max(1.0, float(ref.abs().max()))
    assert int(((ref > 0) != (out > 0)).sum()) == 0
    # the weights are split, not retrained: both halves together are the original kernel
    head = view.heads[-1]
    conv = net.decoder.stages[-1].convs[0].conv
    assert torch.equal(torch.cat([head.conv_a.weight, head.conv_b.weight], 1), conv.weight)


def test_split_concat_view_of_a_residual_unet_and_others():
    from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
    net = ResidualEncoderUNet(1, 4, [8, 16, 32, 64], torch.nn.Conv3d, 3, [1, 2, 2, 2], [1, 1, 1, 1], 2, [1, 1, 1],
                              conv_bias=True, norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"affine": True},
                              nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}).eval()
    view = export_view(net)
    assert isinstance(view, SplitConcatUNet)
    x = torch.randn(1, 1, 32, 32, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert float((net(x) - view(x)).abs().max()) < 1e-4
    plain = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1))
    assert export_view(plain) is plain
    net.decoder.deep_supervision = True  # several outputs: not rewritten
    assert export_view(net) is net


def _python(code: str, **env) -> str:
    import os
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), timeout=300,
                       env={**os.environ, **env})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_nnunet_imports_without_torch_dynamo_and_real_dynamo_still_loads():
    out = _python(
        "import sys\n"
        "from sct_task_sciseg.inference.nnunet_compat import import_nnunet\n"
        "nn = import_nnunet(); predictor, plans, conf = nn.predictor, nn.plans_manager, nn.configuration_manager\n"
        "print('dynamo loaded', 'torch._dynamo' in sys.modules)\n"
        "import nnunetv2.inference.predict_from_raw_data as m\n"
        "import torch._dynamo\n"
        "print('real', hasattr(torch._dynamo, 'optimize'), m.OptimizedModule is torch._dynamo.OptimizedModule)\n"
        "print(predictor.__name__, plans.__name__, conf.__name__)\n", nnUNet_compile="")
    assert out.splitlines() == ["dynamo loaded False", "real True False",
                                "nnUNetPredictor PlansManager ConfigurationManager"]
    # asked to compile: nnU-Net gets the real torch._dynamo
    out = _python("import sys\nfrom sct_task_sciseg.inference.nnunet_compat import import_nnunet\nimport_nnunet()\n"
                  "import torch._dynamo, nnunetv2.inference.predict_from_raw_data as m\n"
                  "print(m.OptimizedModule is torch._dynamo.OptimizedModule)\n", nnUNet_compile="1")
    assert out == "True"


def test_threaded_resampling_is_identical_to_nnunets(installed_model):
    from nnunetv2.preprocessing.resampling.default_resampling import resample_data_or_seg_to_shape
    rng = np.random.default_rng(3)
    probs = rng.random((2, 40, 60, 12), dtype=np.float32)
    args = ((30, 45, 36), [0.5, 0.5, 2.5], [0.66, 0.66, 0.8])
    kw = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}
    serial = resample_data_or_seg_to_shape(probs, *args, **kw)
    threaded = _per_channel_threads(lambda d, *a: resample_data_or_seg_to_shape(d, *a, **kw), 2)(probs, *args)
    assert threaded.shape == serial.shape == (2, 30, 45, 36)
    assert np.array_equal(threaded, serial)
    _, cm = _phantom_network(installed_model)
    plain = cm.resampling_fn_probabilities(torch.from_numpy(probs), *args)
    wrapped = _threaded_resampling(cm, 2)
    assert type(wrapped).__name__ == "ConfigurationManager"
    assert np.array_equal(np.asarray(wrapped.resampling_fn_probabilities(torch.from_numpy(probs), *args)),
                          np.asarray(plain))
    assert _threaded_resampling(cm, 1) is cm


@pytest.mark.parametrize("threads", [1, 2])
def test_one_channel_is_passed_through(threads):
    calls = []
    fn = _per_channel_threads(lambda d, *a: calls.append(d.shape) or d * 2, threads)
    out = fn(np.ones((1, 3, 3, 3), np.float32))
    assert calls == [(1, 3, 3, 3)] and float(out.sum()) == 54.0


def test_threaded_configuration_manager_pickles_as_nnunets(installed_model):
    """nnU-Net's file pipeline sends the configuration to worker processes: it must pickle."""
    import pickle
    _, cm = _phantom_network(installed_model)
    base = type(cm)
    wrapped = _threaded_resampling(cm, 2)
    back = pickle.loads(pickle.dumps(wrapped))
    assert type(back) is base and back.configuration == wrapped.configuration
    assert type(wrapped) is not base  # the original keeps its threads


@needs_data
def test_hooks_that_do_not_fit_fall_back_to_stock_nnunet_with_one_warning(segmenter, monkeypatch, caplog, request):
    """An nnunetv2 newer than the newest tested: nnU-Net's own predictor runs, same masks, one warning line."""
    from sct_task_sciseg.inference import nnunet_compat
    from sct_task_sciseg.pipeline import Segmenter

    reference = segmenter.segment(T2_FAKE_LESION).labels
    monkeypatch.setattr(nnunet_compat, "NEWEST_TESTED", (2, 0, 0))
    nnunet_compat.hook_problems.cache_clear()  # checked once per process: forget the real answer
    request.addfinalizer(nnunet_compat.hook_problems.cache_clear)
    assert nnunet_compat.hook_problems()
    caplog.clear()
    stock = Segmenter.from_config(segmenter.config)
    with caplog.at_level("WARNING", logger="sct_task_sciseg"):
        labels = stock.segment(T2_FAKE_LESION).labels
    assert not stock._loaded.hooks
    assert type(stock.load()).__name__ == "nnUNetPredictor"
    warnings = [r.getMessage() for r in caplog.records if r.name == "sct_task_sciseg" and r.levelname == "WARNING"]
    assert len(warnings) == 1 and "stock predictor" in warnings[0] and "newer than the newest tested" in warnings[0]
    assert np.array_equal(labels, reference)


def test_huge_pages_environment_only_where_it_changes_something():
    from sct_task_sciseg.inference.tuning import HUGE_PAGES_TUNABLE, TUNED_MARK, huge_pages_environment as env
    thp = "always [madvise] never\n"
    new = env({"PATH": "/bin"}, "glibc 2.36", thp)
    assert new == {"PATH": "/bin", "GLIBC_TUNABLES": HUGE_PAGES_TUNABLE, TUNED_MARK: "1"}
    kept = env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "glibc 2.35", thp)
    assert kept["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGE_PAGES_TUNABLE}"
    assert env({}, "glibc 2.34", thp) is None  # no such tunable before 2.35
    assert env({}, "musl 1.2", thp) is None
    assert env({}, "glibc 2.36", "[always] madvise never") is None  # every mapping gets huge pages already
    assert env({}, "glibc 2.36", "always madvise [never]") is None
    assert env({TUNED_MARK: "1"}, "glibc 2.36", thp) is None  # restarted once, or the user said no
    assert env({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "glibc 2.36", thp) is None  # the user's choice


def test_restart_tuned_re_executes_the_same_command_once_with_huge_pages():
    import os
    from sct_task_sciseg.inference.tuning import huge_pages_environment
    if sys.version_info < (3, 10) or huge_pages_environment(os.environ) is None:
        pytest.skip("no huge pages to ask for on this machine (glibc < 2.35, THP not in madvise mode)")
    code = ("import os, sys; from sct_task_sciseg.inference.tuning import restart_tuned; print('before', flush=True);"
            " restart_tuned(); print(os.getpid(), os.environ.get('GLIBC_TUNABLES'), sys.argv[1:])")
    p = subprocess.Popen([sys.executable, "-c", code, "a b", "-x"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    out, errs = p.communicate(timeout=120)
    assert p.returncode == 0, errs
    lines = out.splitlines()
    assert lines[:2] == ["before", "before"] and len(lines) == 3  # the command ran again from the start, once
    pid, tunables, args = lines[2].split(" ", 2)
    assert int(pid) == p.pid  # in place: the same process, not a child
    assert tunables == "glibc.malloc.hugetlb=1" and args == "['a b', '-x']"
