"""Installing this package cannot break SCT: a plain ``pip install`` into a real SCT environment leaves SCT's
torch, nnU-Net, numpy and dynamic_network_architectures as they were, and the broken state that a stock
``nnunetv2`` beside SCT 7.x's fork causes is detected, with the repair command.

Real SCT environments are built by ``scripts/build_sct_env.sh``; set ``SCISEG_SCT_PYTHONS`` to their pythons
(separated by ``os.pathsep``; ``SCISEG_SCT_PYTHON`` is used too). Without them, those tests are skipped.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, T2_FAKE_LESION, needs_data, run_cli

GUARDED = ("torch", "nnunetv2", "nnunetv2-neuropoly", "numpy", "dynamic-network-architectures")
SCT_PYTHONS = [p for p in dict.fromkeys(
    os.environ.get("SCISEG_SCT_PYTHONS", "").split(os.pathsep) + [os.environ.get("SCISEG_SCT_PYTHON", "")]) if p]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _env_python(python: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python`` with its environment's own packages only: no PYTHONPATH (a checkout on it would make pip take
    that folder for the installed package, and refuse to replace an editable install)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([python, *args], capture_output=True, text=True, timeout=timeout, env=env)


def guarded_versions(python: str) -> dict:
    out = _env_python(python, "-m", "pip", "list", "--format", "json").stdout
    return {_norm(d["name"]): d["version"] for d in json.loads(out) if _norm(d["name"]) in GUARDED}


def _how_installed(python: str) -> list:
    """pip arguments that put this package back the way it was installed in that environment."""
    shown = _env_python(python, "-m", "pip", "show", "sct_task_sciseg").stdout
    fields = dict(line.split(": ", 1) for line in shown.splitlines() if ": " in line)
    if fields.get("Editable project location"):
        return ["-e", fields["Editable project location"]]
    code = ("from importlib.metadata import distribution as d; "
            "print(d('sct_task_sciseg').read_text('direct_url.json') or '{}')")
    info = json.loads(_env_python(python, "-c", code).stdout or "{}")
    path = info.get("url", "").replace("file://", "")
    return [path] if path else []


@pytest.mark.skipif(not SCT_PYTHONS, reason="needs real SCT environments (SCISEG_SCT_PYTHONS)")
@pytest.mark.parametrize("python", SCT_PYTHONS)
def test_plain_install_into_sct_changes_none_of_its_packages(python):
    before = guarded_versions(python)
    assert "torch" in before and ("nnunetv2" in before or "nnunetv2-neuropoly" in before)
    restore = _how_installed(python)
    try:
        done = _env_python(python, "-m", "pip", "install", "--no-build-isolation", str(REPO))
        assert done.returncode == 0, done.stderr[-2000:]
        assert guarded_versions(python) == before
        check = _env_python(python, "-c", "import nnunetv2, torch, sct_task_sciseg.inference.runtime as c;"
                            " print(c.runtime_problem())", timeout=300)
        assert check.stdout.strip() == "None", check.stderr[-2000:]
    finally:
        # put the environment's own install back the way scripts/build_sct_env.sh makes it
        restored = _env_python(python, "-m", "pip", "install", "--no-deps", *restore) if restore else None
    assert restored is None or restored.returncode == 0, restored.stderr[-2000:]
    assert _how_installed(python) == restore


def _fake_second_nnunet(folder: Path, name: str, version: str) -> Path:
    """Installed-distribution metadata for a second distribution of the nnunetv2 module (what pip leaves)."""
    dist = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "top_level.txt").write_text("nnunetv2\n")
    return folder


@needs_data
def test_two_nnunet_distributions_are_refused_with_the_repair_command(tmp_path):
    site = _fake_second_nnunet(tmp_path / "site", "nnunetv2-neuropoly", "2.6.2")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    out = tmp_path / "out" / "t2.nii.gz"
    out.parent.mkdir()
    res = run_cli("-i", T2_FAKE_LESION, "-o", out, env=env)
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert "two distributions provide the nnunetv2 module" in lines[0]
    assert "nnunetv2-neuropoly 2.6.2" in lines[0]
    assert re.search(re.escape(str(Path(sys.executable).parent)) + r"/python[0-9.]* -m pip uninstall -y nnunetv2 && ",
                     lines[0])
    assert "--force-reinstall --no-deps nnunetv2-neuropoly==2.6.2" in lines[0]
    assert not any(out.parent.iterdir())


def test_core_requirements_leave_torch_and_nnunet_to_an_extra():
    text = (REPO / "setup.py").read_text()
    core = text[text.index("install_requires=["):text.index("extras_require")]
    assert not re.search(r'"(torch|nnunetv2|dynamic.network.architectures)\b', core)
    standalone = text[text.index('"standalone": ['):]
    assert '"nnunetv2>=2.3.1,!=2.4.0,!=2.4.1,!=2.4.2,<=2.8.1"' in standalone[:600]
