"""Shared fixtures: real data by path, real release zips, a real loopback release server, isolated models dirs."""
from __future__ import annotations

import inspect
import os
import re
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

#: The tests of a module (``pytestmark = needs_data``) or one test that may read the shared volumes; those that
#: do (:func:`uses_shared_data`) are skipped without them, the pure ones always run.
needs_data = pytest.mark.shared_data
DATA_USE = re.compile(r"\b(T2_FAKE_LESION|DATA|SHARED|T2|copy_input|slow_input|sct_testing_data)\b")


def sct_pythons() -> list:
    """The Pythons of real SCT environments, from the environment only: ``SCISEG_SCT_PYTHONS`` (separated by
    ``os.pathsep``) and ``SCISEG_SCT_PYTHON``; existing files, each once, in that order."""
    named = os.environ.get("SCISEG_SCT_PYTHONS", "").split(os.pathsep) + [os.environ.get("SCISEG_SCT_PYTHON", "")]
    return [Path(p) for p in dict.fromkeys(named) if p and Path(p).is_file()]


def sct_python(version: str):
    """The first of :func:`sct_pythons` whose SCT has release ``version`` (its ``version.txt``), else None."""
    code = ("import importlib.util as u, pathlib as p; s = u.find_spec('spinalcordtoolbox'); "
            "print((p.Path(list(s.submodule_search_locations)[0]) / 'version.txt').read_text().strip())")
    for python in sct_pythons():
        r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
        if r.returncode == 0 and r.stdout.strip() == version:
            return python
    return None


# -- test tiers ---------------------------------------------------------------------------------------------
#: Every marker of the suite, registered here only (``--strict-markers`` refuses any other). Markers are given
#: by the rules of :func:`tier_marks` (a test may also carry one explicitly). The fast tier is
#: ``python -m pytest -q -m "not slow" tests``.
MARKERS = {
    "slow": "runs a model, starts a process or needs an optional environment (the fast tier leaves it out)",
    "subprocess": "starts a process: the sciseg command, a Python child, a server",
    "sct": "needs a real SCT environment (SCISEG_SCT_PYTHON / SCISEG_SCT_PYTHONS)",
    "cluster": "runs Dask (pip install \"sct_task_sciseg[cluster]\")",
    "slurm": "runs dask-jobqueue's SLURM cluster",
    "browser": "renders the QC page in a headless Chromium",
    "shared_data": "may read the shared volumes (SCISEG_TEST_DATA); a test that does is skipped without them",
}
#: Fixtures that load or run a model (directly or through another fixture).
MODEL_FIXTURES = {"installed_model", "segmenter", "other_segmenter"}
PROCESS_CALL = re.compile(r"\b(run_cli|start_cli|subprocess|Popen|SCISEG_COMMAND|sys\.executable)\b")
SCT_USE = re.compile(r"\b(SCT_PYTHONS?|SCT_ENVS|sct_pythons|needs_sct)\b")


def _sources(fn, depth: int = 2) -> str:
    """The source of ``fn`` and of the functions of its module that it calls (``depth`` levels)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        return ""
    if depth:
        module = sys.modules.get(getattr(fn, "__module__", ""), None)
        for name in set(re.findall(r"\b([A-Za-z_]\w*)\(", text)):
            helper = getattr(module, name, None)
            if inspect.isfunction(helper) and helper is not fn:
                text += _sources(helper, depth - 1)
    return text


def uses_shared_data(fn) -> bool:
    """True when ``fn`` (or a function of its module that it calls) names the shared volumes."""
    return bool(DATA_USE.search(_sources(fn)))


def _functions(item) -> list:
    """The test function and the functions of the fixtures it uses."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return [getattr(item, "function", None)] + [d[-1].func for name, d in defs.items() if d]


def tier_marks(item) -> set:
    """The markers a collected test gets from what it uses."""
    fn = getattr(item, "function", None)
    text = _sources(fn) if fn is not None else ""
    module = Path(str(item.fspath)).name
    marks = {m.name for m in item.iter_markers()} & set(MARKERS) - {"shared_data"}
    if PROCESS_CALL.search(text):
        marks.add("subprocess")
    if SCT_USE.search(text) or module == "test_sct_install.py":
        marks.add("sct")
    if module == "test_cluster.py":
        marks.add("cluster")
    if "slurm" in item.name:
        marks.add("slurm")
    if "chromium" in text.lower():
        marks.add("browser")
    if marks or MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
        marks.add("slow")
    return marks


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_collection_modifyitems(config, items):
    missing = pytest.mark.skip(reason="SCT's testing data not found (set SCISEG_TEST_DATA to the folder holding "
                                          "sct_testing_data/)")
    for item in items:
        for name in sorted(tier_marks(item)):
            item.add_marker(name)
        if item.get_closest_marker("shared_data") and not T2_FAKE_LESION.is_file() and any(
                fn is not None and uses_shared_data(fn) for fn in _functions(item)):
            item.add_marker(missing)


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


#: The ``sciseg`` command as a process: ``python -m sct_task_sciseg`` runs the console entry point
#: (:func:`sct_task_sciseg.cli.console_main`) of the package under test, whatever script an environment holds.
SCISEG_COMMAND = [sys.executable, "-m", "sct_task_sciseg"]


def run_cli(*args, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """The ``sciseg`` command as a real process."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([*SCISEG_COMMAND, *map(str, args)], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)
