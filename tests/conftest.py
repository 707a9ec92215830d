"""Shared fixtures: real data by path, real release zips, a real loopback release server, isolated models dirs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sct_task_sciseg.tasks import SCISEG

sys.path.insert(0, str(Path(__file__).parent))
from release_server import ReleaseServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SCISEG_TEST_DATA", REPO.parent / "shared" / "data")) / "sct_testing_data"
T2_FAKE_LESION = DATA / "t2" / "t2_fake_lesion.nii.gz"
V2 = SCISEG.release("r20240729")
V1 = SCISEG.release("r20240130")
EMBEDDED_ZIP = SCISEG.demo_release.embedded_path()

needs_data = pytest.mark.skipif(not T2_FAKE_LESION.is_file(),
                                reason="SCT's testing data not found (set SCISEG_TEST_DATA to the folder holding "
                                       "sct_testing_data/)")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    """No test reads the user's models or reaches upstream; retries are fast."""
    monkeypatch.delenv("SCISEG_RELEASE_URL", raising=False)
    monkeypatch.setenv("SCISEG_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))  # not the user's own models folder
    monkeypatch.setenv("SCISEG_BACKOFF", "0.01")
    monkeypatch.setenv("SCISEG_RETRIES", "2")


@pytest.fixture(scope="session")
def release_zip() -> Path:
    """The real release zip of the embedded phantom-trained nnU-Net v2 model."""
    override = os.environ.get("SCISEG_TEST_RELEASE_ZIP")
    return Path(override) if override else EMBEDDED_ZIP


@pytest.fixture
def mirror(tmp_path, release_zip) -> Path:
    """A folder laid out like the upstream release downloads: ``{tag}/{asset}``."""
    root = tmp_path / "mirror"
    for rel in (V2, V1):
        (root / rel.tag).mkdir(parents=True)
        shutil.copy(release_zip, root / rel.tag / rel.asset)
    return root


@pytest.fixture
def server(mirror):
    with ReleaseServer(mirror) as srv:
        yield srv


@pytest.fixture(scope="session")
def installed_model(tmp_path_factory, release_zip):
    """The embedded release installed once for the whole session (pipeline tests)."""
    from sct_task_sciseg.weights import install
    models = tmp_path_factory.mktemp("session_models")
    return install(SCISEG, V2.tag, models_dir=models, source=str(release_zip), quiet=True)


@pytest.fixture(scope="session")
def segmenter(installed_model):
    from sct_task_sciseg.pipeline import Segmenter
    return Segmenter(model_folder=installed_model.model_folder, threads=2, quiet=True)


def run_cli(*args, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """The ``sciseg`` console script as a real process."""
    exe = Path(sys.executable).with_name("sciseg")
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)
