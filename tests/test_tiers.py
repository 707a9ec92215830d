"""The test tiers: markers registered in one place (conftest.MARKERS) and given by what a test uses; pure tests
run without the shared volumes."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import conftest
import test_input_safety
import test_speed_modes


def _item(fn, fixtures=(), module="test_x.py", marks=()):
    return SimpleNamespace(function=fn, fspath=Path("tests") / module, name=fn.__name__, fixturenames=list(fixtures),
                           iter_markers=lambda: [SimpleNamespace(name=m) for m in marks])


def test_markers_are_registered_once(pytestconfig):
    registered = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    assert {"slow", "subprocess", "sct", "cluster", "slurm", "browser", "shared_data"} <= registered
    assert set(conftest.MARKERS) <= registered


def test_markers_follow_what_a_test_uses():
    assert conftest.tier_marks(_item(test_speed_modes.test_auto_resolution)) == set()  # pure: the fast tier
    sigterm = _item(test_input_safety.test_sigterm_is_handled_like_ctrl_c, ["installed_model", "tmp_path"])
    assert conftest.tier_marks(sigterm) == {"subprocess", "slow"}  # through its helper start_cli
    assert conftest.tier_marks(_item(test_speed_modes.test_auto_resolution, ["segmenter"])) == {"slow"}
    assert conftest.tier_marks(_item(test_speed_modes.test_auto_resolution, module="test_cluster.py")) == {
        "cluster", "slow"}


def test_pure_tests_do_not_need_the_shared_volumes():
    assert not conftest.uses_shared_data(test_speed_modes.test_auto_resolution)
    assert conftest.uses_shared_data(test_input_safety.test_input_voxel_cap)


def test_sct_pythons_come_from_the_environment_only(monkeypatch, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("")
    monkeypatch.delenv("SCISEG_SCT_PYTHON", raising=False)
    monkeypatch.delenv("SCISEG_SCT_PYTHONS", raising=False)
    assert conftest.sct_pythons() == []
    monkeypatch.setenv("SCISEG_SCT_PYTHONS", f"{fake}:{tmp_path / 'missing'}")
    monkeypatch.setenv("SCISEG_SCT_PYTHON", str(fake))
    assert conftest.sct_pythons() == [fake]
    tests = Path(__file__).parent
    hard_coded = [p.name for p in tests.glob("*.py")
                  if "/work/sct-envs" in p.read_text() and p.name != Path(__file__).name]
    assert hard_coded == []
