"""The SCT adapter (sct_task_sciseg.sct + sct_hook).

Everywhere: registration into MODELS/TASKS dicts shaped like SCT 6.5's, 7.3's and the development head's
(7.4.dev0: ``install_model`` takes ``custom_url`` as a list) (fake ``models`` modules
with SCT's up-to-date rule), install through SCT's ``install_model`` from a loopback mirror into SCT's
layout, the ``.pth`` startup hook in real child processes (fake ``spinalcordtoolbox`` package), and the
hook's install/uninstall bookkeeping.

With a real SCT: set ``SCISEG_SCT_PYTHON`` to the python of an SCT environment that has this package
installed (``scripts/build_sct_env.sh``); those tests are skipped otherwise.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
import zipfile
from pathlib import Path

import pytest

from sct_task_sciseg import sct, sct_hook
from sct_task_sciseg.weights import locations as sct_locations
from sct_task_sciseg.errors import InstallError, SciSegError
from sct_task_sciseg.tasks import SCISEG

sys.path.insert(0, str(Path(__file__).parent))
from release_server import ReleaseServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
V2 = SCISEG.release("r20240729")
KEY = f"{SCISEG.name}/{V2.tag}"
SCT_SCI_KEY = "model_seg_sci_multiclass_sc_lesion_nnunet"
SCT_SCI_URL = "https://github.com/ivadomed/model_seg_sci/releases/download/r20240729/model_SCIsegV2_r20240729.zip"

# --------------------------------------------------------------------------------------------------------
# Fake SCT: the shapes of SCT 6.5's and 7.3's deepseg/models.py dicts, SCT's folder() and its
# source.json up-to-date rule (re-stated here, not copied), and a sct_deepseg stand-in.
# --------------------------------------------------------------------------------------------------------
MODELS_SRC = '''
import json
import os

FRAMEWORK = {framework!r}
MODELS = {{
    "t2star_sc": {{"url": ["https://example.org/t2star_sc.zip"], "description": "T2* cord",
                   "contrasts": ["t2star"], "default": True}},
    "{sci_key}": {{"url": ["{sci_url}"], "description": "SCI lesion and cord", "contrasts": ["t2"],
                   "thr": None, "default": False}},
}}
if FRAMEWORK:
    MODELS["t2star_sc"]["framework"] = "ivadomed"
    MODELS["{sci_key}"]["framework"] = "nnunetv2"
TASKS = {tasks}
INSTALL_CALLS = []


def folder(name_model):
    return os.path.join(__deepseg_dir__, name_model)


def install_model(name_model, custom_url=None):
    INSTALL_CALLS.append((name_model, custom_url))


def is_up_to_date(path_model):
    try:
        with open(os.path.join(path_model, "source.json")) as fp:
            source = json.load(fp)
    except OSError:
        return False
    if source["model_name"] not in MODELS:
        return False
    if source.get("custom") is True:
        return True
    return source["model_urls"] in MODELS[source["model_name"]]["url"]
'''

TASKS_V6 = '''{
    "seg_sc_t2star": {"description": "Cord T2*", "long_description": "...", "url": "u", "models": ["t2star_sc"]},
    "seg_sc_lesion_t2w_sci": {"description": "SCI lesion and cord", "long_description": "...", "url": "u",
                              "models": ["%s"]},
}''' % SCT_SCI_KEY

TASKS_V7 = '''{
    "spinalcord": {"description": "Cord", "long_description": "...", "url": "u", "models": ["t2star_sc"],
                   "citation": "c", "group": "spinal_cord", "priority": 100},
    "lesion_sci_t2": {"description": "SCI lesion and cord", "long_description": "...", "url": "u",
                      "models": ["%s"], "citation": "c", "group": "pathology"},
}''' % SCT_SCI_KEY

# SCT's development head (7.4.dev0): install_model's custom_url is a list of URLs, one per fold (PR #5283), and
# every model's entry is read with .get('cropped_image') by load_crop_metadata() (re-stated, not copied)
MODELS_74 = '''

def install_model(name_model, custom_url=None):
    if custom_url is not None and not isinstance(custom_url, list):
        raise ValueError(f"Expected a list of model URLs for custom_url, got: {custom_url}")
    INSTALL_CALLS.append((name_model, custom_url))


def load_crop_metadata(name_model, path_model):
    if not MODELS.get(name_model, {}).get("cropped_image", False):
        return {}
    raise RuntimeError(f"{name_model}: cropped model without crop_metadata.json")
'''

SHAPES = {
    "6.5": dict(framework=False, tasks=TASKS_V6, builtin="seg_sc_lesion_t2w_sci"),
    "7.3": dict(framework=True, tasks=TASKS_V7, builtin="lesion_sci_t2"),
    "7.4": dict(framework=True, tasks=TASKS_V7, builtin="lesion_sci_t2", extra=MODELS_74),
}


def models_source(version: str) -> str:
    shape = SHAPES[version]
    return MODELS_SRC.format(framework=shape["framework"], tasks=shape["tasks"], sci_key=SCT_SCI_KEY,
                             sci_url=SCT_SCI_URL) + shape.get("extra", "")


def custom_urls(version: str, *urls: str):
    """``-custom-url`` as that SCT passes it to install_model: a string up to 7.3, a list on 7.4."""
    return list(urls) if "extra" in SHAPES[version] else urls[0]


def fake_models(version: str, deepseg_dir: Path, sources: dict = None) -> types.ModuleType:
    """SCT's models module as a module object; ``sources`` = {filename: text} of its sibling files
    (nnunet.py, inference.py) whose contents mark SCT features."""
    module = types.ModuleType(f"fake_sct_{version.replace('.', '_')}_models")
    module.__dict__["__deepseg_dir__"] = str(deepseg_dir)
    if sources is not None:
        pkg = deepseg_dir.parent / "fake_deepseg_pkg"
        pkg.mkdir(exist_ok=True)
        for name, text in sources.items():
            (pkg / name).write_text(text)
        module.__file__ = str(pkg / "models.py")
    exec(models_source(version), module.__dict__)
    return module


SCT_DEEPSEG_V6 = '''
import json, sys
from spinalcordtoolbox.deepseg import models

def main(argv):
    if "-list-tasks" in argv:
        print(json.dumps(sorted(models.TASKS)))
        return
    raise SystemExit(3)
'''

SCT_DEEPSEG_V7 = SCT_DEEPSEG_V6 + '''
# 7.x builds one subparser per task: parser.add_subparsers(...)
'''


def write_fake_sct(root: Path, version: str, broken: bool = False) -> Path:
    """A minimal installed-SCT tree: ``root/spinalcordtoolbox/...`` (+ ``data/``); returns ``root``."""
    pkg = root / "spinalcordtoolbox"
    for sub in ("", "utils", "deepseg", "scripts"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "version.txt").write_text(version + "\n")
    (pkg / "utils" / "sys.py").write_text(textwrap.dedent('''
        import os
        __sct_dir__ = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
        __deepseg_dir__ = os.path.join(__sct_dir__, "data", "deepseg_models")
        def init_sct():
            pass
    '''))
    src = models_source(version).replace("import os\n", "import os\nfrom spinalcordtoolbox.utils.sys import "
                                         "__deepseg_dir__\n", 1)
    if broken:
        src = src.replace("TASKS = ", "NOT_TASKS = ")
    (pkg / "deepseg" / "models.py").write_text(src)
    (pkg / "scripts" / "sct_deepseg.py").write_text(SCT_DEEPSEG_V7 if version.startswith("7") else SCT_DEEPSEG_V6)
    (root / "data" / "deepseg_models").mkdir(parents=True, exist_ok=True)
    return root


def make_model_zip(path: Path, folder: str = "nnUNetTrainerDA5__nnUNetPlans__3d_fullres",
                   dataset_name: str = "Dataset501_allSCIsegV2") -> Path:
    """A release zip of the embedded phantom-trained model, under another folder and dataset name."""
    with zipfile.ZipFile(SCISEG.demo_release.embedded_path()) as src, zipfile.ZipFile(path, "w") as zf:
        for info in src.infolist():
            if info.is_dir():
                continue
            data = src.read(info)
            name = info.filename.split("/", 1)[1]
            if name == "plans.json":
                data = json.dumps(dict(json.loads(data), dataset_name=dataset_name)).encode()
            zf.writestr(f"{folder}/{name}", data)
    return path


@pytest.fixture(params=sorted(SHAPES))
def version(request):
    return request.param


@pytest.fixture
def deepseg_dir(tmp_path):
    d = tmp_path / "sct" / "data" / "deepseg_models"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def release_mirror(tmp_path, monkeypatch):
    """A loopback mirror serving a small release zip under the upstream name of the default release."""
    root = tmp_path / "mirror"
    (root / V2.tag).mkdir(parents=True)
    make_model_zip(root / V2.tag / V2.asset)
    with ReleaseServer(root) as srv:
        monkeypatch.setenv("SCISEG_RELEASE_URL", srv.url)
        yield srv


def snapshot(models):
    return (copy.deepcopy(models.MODELS), copy.deepcopy(models.TASKS), models.install_model, models.is_up_to_date,
            models.folder)


# --------------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------------
def test_register_on_6x_shape_takes_over_the_same_name(deepseg_dir):
    models = fake_models("6.5", deepseg_dir)
    builtin_model = copy.deepcopy(models.MODELS[SCT_SCI_KEY])
    reg = sct.register(models)
    assert reg.model.key == KEY and reg.model.url == SCT_SCI_URL
    assert reg.replaced == ("seg_sc_lesion_t2w_sci",)
    assert set(reg.names) == {"seg_sc_lesion_t2w_sci", "lesion_sci_t2"}  # 7.x's name is free on 6.x
    entry = models.TASKS["seg_sc_lesion_t2w_sci"]
    assert set(entry) == {"description", "long_description", "url", "models"}  # 6.x task keys only
    assert entry["models"] == [KEY]
    assert set(models.MODELS[KEY]) == {"url", "description", "contrasts", "thr", "default"}  # no framework
    assert models.MODELS[KEY]["url"] == [SCT_SCI_URL] and models.MODELS[KEY]["thr"] is None
    assert models.MODELS[SCT_SCI_KEY] == builtin_model  # SCT's own model entry untouched
    assert models.folder(KEY) == str(deepseg_dir / SCISEG.name / V2.tag)


def test_register_on_7x_shape_leaves_builtin_alone(deepseg_dir):
    models = fake_models("7.3", deepseg_dir)
    builtin = copy.deepcopy(models.TASKS["lesion_sci_t2"])
    reg = sct.register(models)
    assert reg.names == ("seg_sc_lesion_t2w_sci",) and reg.replaced == ()
    assert models.TASKS["lesion_sci_t2"] == builtin
    entry = models.TASKS["seg_sc_lesion_t2w_sci"]
    assert entry["models"] == [KEY]
    assert entry["group"] == "pathology" and entry["priority"] == 0 and "SCIseg" in entry["citation"]
    assert models.MODELS[KEY]["framework"] == "nnunetv2"
    assert reg.features == {"model_framework": True, "task_citation": True, "task_group": True,
                            "task_priority": True, "trainer_folder": True, "dataset_orientation": True}


def test_replace_builtin_on_7x_redirects_lesion_sci_t2(deepseg_dir):
    models = fake_models("7.3", deepseg_dir)
    reg = sct.register(models, replace_builtin=True)
    assert set(reg.names) == {"seg_sc_lesion_t2w_sci", "lesion_sci_t2"} and reg.replaced == ("lesion_sci_t2",)
    assert models.TASKS["lesion_sci_t2"]["models"] == [KEY]
    assert models.TASKS["lesion_sci_t2"]["group"] == "pathology"


def test_register_is_idempotent_and_unregister_restores_everything(deepseg_dir, version):
    models = fake_models(version, deepseg_dir)
    before = snapshot(models)
    sct.register(models)
    once = copy.deepcopy((models.MODELS, models.TASKS))
    wrapped = models.install_model
    sct.register(models)
    assert copy.deepcopy((models.MODELS, models.TASKS)) == once
    assert models.install_model._sciseg_original is before[2]  # never wrapped twice
    assert wrapped._sciseg_original is before[2]
    sct.register(models, replace_builtin=True)  # a different choice replaces the previous registration
    assert sct.unregister(models) is True
    assert snapshot(models) == before
    assert sct.unregister(models) is False
    assert sct.registration(models) is None


def test_every_installed_task_is_registered(deepseg_dir, version, monkeypatch):
    """A second installed task (contrast T1w, its own label scheme) gets its own SCT task and model entries,
    routed to this package's installer; a task with a name sct_deepseg special-cases is left out, not fatal."""
    from dataclasses import replace

    from second_task import OTHER

    bad = replace(OTHER, name="seg_lesion_ms_test")
    monkeypatch.setattr(sct.deepseg_models, "all_tasks", lambda: {t.name: t for t in (SCISEG, OTHER, bad)})
    models = fake_models(version, deepseg_dir)
    before = snapshot(models)
    reg = sct.register(models)
    other_key = f"{OTHER.name}/t1"
    assert [m.key for m in reg.models] == [KEY, other_key] and reg.model.key == KEY
    assert OTHER.name in reg.names and bad.name not in models.TASKS
    assert models.TASKS[OTHER.name]["models"] == [other_key]
    assert models.TASKS[OTHER.name]["description"] == "test task: tissue with spots"
    assert models.MODELS[other_key]["contrasts"] == ["t1"]
    assert models.MODELS[other_key]["url"] == ["http://127.0.0.1:9/none/t1/tissue_t1.zip"]
    assert models.folder(other_key) == str(deepseg_dir / OTHER.name / "t1")
    assert models.TASKS[SCISEG.name]["models"] == [KEY]  # the default task as before
    assert sct.unregister(models) is True and snapshot(models) == before
    monkeypatch.setattr(sct.startup_files, "all_tasks", lambda: {t.name: t for t in (SCISEG, OTHER)})
    line = sct.install_hook(site_dir=deepseg_dir / "site", require_sct=False)[0]
    assert line.endswith(f"sct_deepseg registers {SCISEG.name}, {OTHER.name})")
    only = sct.register(models, task=OTHER)  # one given task: that task alone
    assert [m.key for m in only.models] == [other_key] and KEY not in models.MODELS
    assert models.TASKS.get(SCISEG.name) == before[1].get(SCISEG.name)  # SCT's own entry, if it has one


def test_registered_names_avoid_sct_special_cases(deepseg_dir, version):
    models = fake_models(version, deepseg_dir)
    reg = sct.register(models, replace_builtin=True)
    for name in reg.names + (reg.model.key,):
        sct.check_name(name)
        assert not any(s in name for s in sct.RESERVED_SUBSTRINGS)
    for bad in ("seg_tumor_x", "sc_epi2", "gm_mouse", "my_rootlets", "spine2", "canal_t2", "lesion_ms_x"):
        with pytest.raises(ValueError, match="sct_deepseg treats"):
            sct.check_name(bad)


def test_release_can_be_chosen(deepseg_dir, monkeypatch):
    models = fake_models("7.3", deepseg_dir)
    monkeypatch.setenv(sct.ENV_RELEASE, "r20240130")
    reg = sct.register(models)
    assert reg.model.key == f"{SCISEG.name}/r20240130"
    assert models.MODELS[reg.model.key]["url"] == [SCISEG.release("r20240130").url(SCISEG.base_url)]


# --------------------------------------------------------------------------------------------------------
# Install through SCT's install_model / is_up_to_date
# --------------------------------------------------------------------------------------------------------
def test_other_models_still_use_scts_installer(deepseg_dir, version):
    models = fake_models(version, deepseg_dir)
    sct.register(models)
    url = custom_urls(version, "https://example.org/custom.zip")
    models.install_model("t2star_sc")
    models.install_model(SCT_SCI_KEY, url)
    assert models.INSTALL_CALLS == [("t2star_sc", None), (SCT_SCI_KEY, url)]
    assert models.folder("t2star_sc") == str(deepseg_dir / "t2star_sc")


def test_install_through_sct_from_loopback_mirror(deepseg_dir, version, release_mirror):
    from sct_task_sciseg.weights import find_installed

    models = fake_models(version, deepseg_dir)
    sct.register(models)
    folder = Path(models.folder(KEY))
    assert models.is_up_to_date(str(folder)) is False  # not installed
    models.install_model(KEY)
    assert models.INSTALL_CALLS == []  # SCT's own downloader was not used
    assert [p.name for p in folder.glob("nnUNetTrainer*")] == ["nnUNetTrainerDA5__nnUNetPlans__3d_fullres"]
    source = json.loads((folder / "source.json").read_text())
    assert source["model_name"] == KEY and source["model_urls"] == SCT_SCI_URL and source["custom"] is False
    assert source["downloaded_from"] == f"{release_mirror.url}/{V2.tag}/{V2.asset}"
    # SCT's own rule accepts it, and so does the wrapped check
    assert models.is_up_to_date._sciseg_original(str(folder)) is True
    assert models.is_up_to_date(str(folder)) is True
    # one copy: sciseg finds the very same folder
    installed = find_installed(SCISEG, V2.tag, models_dir=deepseg_dir)
    assert installed.path == folder and installed.sha256 == source["sha256"]
    # installing again reuses the verified copy (no second download)
    n = len(release_mirror.requests)
    models.install_model(KEY)
    assert len(release_mirror.requests) == n


def test_damaged_copy_is_reinstalled_through_sct(deepseg_dir, release_mirror):
    models = fake_models("7.3", deepseg_dir)
    sct.register(models)
    models.install_model(KEY)
    folder = Path(models.folder(KEY))
    ckpt = next(folder.glob("nnUNetTrainer*/fold_1/checkpoint_final.pth"))
    ckpt.write_bytes(b"tampered" + ckpt.read_bytes()[8:])
    assert models.is_up_to_date(str(folder)) is False  # SCT would reinstall now
    models.install_model(KEY)
    assert models.is_up_to_date(str(folder)) is True


def test_copy_installed_by_sciseg_gets_scts_source_json(deepseg_dir, release_mirror):
    from sct_task_sciseg.weights import install

    install(SCISEG, V2.tag, models_dir=deepseg_dir, quiet=True)
    models = fake_models("6.5", deepseg_dir)
    sct.register(models)
    folder = Path(models.folder(KEY))
    assert not (folder / "source.json").exists()
    assert models.is_up_to_date(str(folder)) is True  # no reinstall, source.json written
    assert json.loads((folder / "source.json").read_text())["model_urls"] == SCT_SCI_URL


def test_custom_url_installs_the_release_from_that_file(deepseg_dir, tmp_path):
    models = fake_models("7.3", deepseg_dir)
    sct.register(models)
    z = make_model_zip(tmp_path / "copy.zip")
    models.install_model(KEY, str(z))
    source = json.loads((Path(models.folder(KEY)) / "source.json").read_text())
    assert source["custom"] is True and source["model_urls"] == z.resolve().as_uri()
    assert models.is_up_to_date._sciseg_original(models.folder(KEY)) is True


def test_release_without_trainer_folder_gets_an_nnunet_name_for_sct(deepseg_dir, tmp_path):
    """SCT looks for one nnUNetTrainer* folder: the installer names an oddly named model folder that way."""
    models = fake_models("7.3", deepseg_dir)
    sct.register(models)
    z = make_model_zip(tmp_path / "odd.zip", folder="my_model")
    models.install_model(KEY, str(z))
    folders = [p.name for p in Path(models.folder(KEY)).iterdir() if p.is_dir()]
    assert folders == ["nnUNetTrainer__nnUNetPlans__3d_fullres"]
    assert models.is_up_to_date(models.folder(KEY)) is True


NNUNET_64 = 'trainer_dirs = glob.glob(os.path.join(path_model, "nnUNetTrainer*"))\n'
INFERENCE_65 = "if 'image_orientation' in predictor.dataset_json:\n"


def test_scts_older_than_6_4_are_refused(deepseg_dir):
    models = fake_models("6.5", deepseg_dir, {"nnunet.py": "glob(os.path.join(path_model, 'fold_*'))\n",
                                              "inference.py": ""})
    before = snapshot(models)
    with pytest.raises(SciSegError, match="SCT 6.4 or newer"):
        sct.register(models)
    assert snapshot(models) == before


@pytest.mark.parametrize("dataset_name,ok", [("Dataset501_allSCIsegV2", True), ("Dataset900_Phantom", False)])
def test_sct_6_4_needs_sci_in_the_dataset_name(deepseg_dir, tmp_path, dataset_name, ok):
    """6.4 picks RPI only for dataset names containing "SCI": any other model would run mis-oriented."""
    models = fake_models("6.5", deepseg_dir, {"nnunet.py": NNUNET_64, "inference.py": "# 6.4\n"})
    reg = sct.register(models)
    assert reg.features["trainer_folder"] and not reg.features["dataset_orientation"]
    z = make_model_zip(tmp_path / "m.zip", dataset_name=dataset_name)
    if ok:
        models.install_model(KEY, str(z))
        assert models.is_up_to_date(models.folder(KEY)) is True
    else:
        with pytest.raises(InstallError, match="LPI instead of RPI"):
            models.install_model(KEY, str(z))


def test_current_scts_sources_are_recognised(deepseg_dir):
    models = fake_models("7.3", deepseg_dir, {"nnunet.py": NNUNET_64, "inference.py": INFERENCE_65})
    reg = sct.register(models)
    assert reg.features["trainer_folder"] and reg.features["dataset_orientation"]


# --------------------------------------------------------------------------------------------------------
# The startup hook, in real child processes with a fake SCT
# --------------------------------------------------------------------------------------------------------
def run_python(code: str, *, site_dir: Path, sct_dir: Path, env=None, cwd=None):
    """A child Python that processes ``site_dir``'s .pth files like site-packages, with SCT importable."""
    full_env = dict(os.environ)
    full_env.pop("SCISEG_SCT_HOOK", None)
    full_env["PYTHONPATH"] = os.pathsep.join([str(sct_dir), str(REPO)])
    full_env.update(env or {})
    prog = f"import site; site.addsitedir({str(site_dir)!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, env=full_env,
                          cwd=cwd or site_dir, timeout=120)


@pytest.fixture
def hooked(tmp_path, version):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    lines = sct.install_hook(site_dir=site_dir, require_sct=False)
    assert lines[0].startswith("created: ")
    return site_dir, write_fake_sct(tmp_path / "sct", version)


PROBE = '''
import json, sys
before = sorted(m for m in sys.modules if m.startswith(("sct_task_sciseg", "torch", "nnunetv2")))
import spinalcordtoolbox.deepseg.models as m
print(json.dumps({"before": before, "tasks": sorted(m.TASKS), "models": sorted(m.MODELS),
                  "torch": "torch" in sys.modules}))
'''


def test_hook_registers_when_sct_loads_its_models(hooked, version):
    site_dir, sct_dir = hooked
    r = run_python(PROBE, site_dir=site_dir, sct_dir=sct_dir)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # at startup only the tiny hook module and the os-only table of variables it reads its switch from are
    # loaded; nothing heavy, ever
    assert out["before"] == ["sct_task_sciseg", "sct_task_sciseg.environment", "sct_task_sciseg.sct_hook"]
    assert out["torch"] is False
    assert "seg_sc_lesion_t2w_sci" in out["tasks"] and KEY in out["models"]
    assert ("lesion_sci_t2" in out["tasks"]) is True  # 6.x: added; 7.x: SCT's own, still there
    assert "warning" not in r.stderr


def test_hook_respects_replace_builtin_choice(tmp_path):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    sct.install_hook(replace_builtin=True, site_dir=site_dir, require_sct=False)
    sct_dir = write_fake_sct(tmp_path / "sct", "7.3")
    r = run_python("import spinalcordtoolbox.deepseg.models as m; print(m.TASKS['lesion_sci_t2']['models'])",
                   site_dir=site_dir, sct_dir=sct_dir)
    assert r.stdout.strip() == str([KEY]), r.stderr


def test_hook_failure_is_one_warning_and_sct_goes_on(tmp_path):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    sct.install_hook(site_dir=site_dir, require_sct=False)
    sct_dir = write_fake_sct(tmp_path / "sct", "7.3", broken=True)
    r = run_python("import spinalcordtoolbox.deepseg.models as m; print(sorted(m.MODELS))",
                   site_dir=site_dir, sct_dir=sct_dir)
    assert r.returncode == 0
    assert "t2star_sc" in r.stdout
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "SCT continues without it" in warnings[0], r.stderr


def test_hook_can_be_switched_off_for_one_run(hooked):
    site_dir, sct_dir = hooked
    r = run_python("import spinalcordtoolbox.deepseg.models as m; print('seg_sc_lesion_t2w_sci' in m.MODELS"
                   " or any(k.startswith('seg_sc_lesion_t2w_sci/') for k in m.MODELS))",
                   site_dir=site_dir, sct_dir=sct_dir, env={"SCISEG_SCT_HOOK": "0"})
    assert r.stdout.strip() == "False", r.stderr


def test_hook_line_is_silent_when_the_package_is_gone(tmp_path):
    """A .pth left behind after `pip uninstall sct_task_sciseg` must not disturb any Python start."""
    line = sct.pth_text().splitlines()[-1]
    r = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path = [p for p in sys.path if p]\n{line}\n"
                        "print('ok')"], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0 and r.stdout.strip() == "ok" and r.stderr == ""


def test_hook_does_not_touch_other_imports(hooked):
    site_dir, sct_dir = hooked
    r = run_python("import json, spinalcordtoolbox.utils.sys as s, sys; from sct_task_sciseg import sct_hook; "
                   "print(sct_hook.installed_finder() is not None, 'sct_task_sciseg.sct' in sys.modules)",
                   site_dir=site_dir, sct_dir=sct_dir)
    assert r.stdout.split() == ["True", "False"], r.stderr


def test_hook_installed_late_registers_at_once(deepseg_dir, monkeypatch):
    models = fake_models("7.3", deepseg_dir)
    monkeypatch.setitem(sys.modules, sct_hook.TARGET, models)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    assert sct_hook.install() is not None
    try:
        assert sct.registration(models).names == ("seg_sc_lesion_t2w_sci",)
    finally:
        sct_hook.uninstall()
        sct.unregister(models)


# --------------------------------------------------------------------------------------------------------
# install_hook / uninstall_hook bookkeeping, SCT detection, the wrapper
# --------------------------------------------------------------------------------------------------------
def test_install_and_uninstall_hook_are_idempotent_and_report(tmp_path):
    site_dir = tmp_path / "site"
    pth = site_dir / sct.PTH_NAME
    assert sct.install_hook(site_dir=site_dir, require_sct=False)[0] == (
        f"created: {pth} (startup hook: sct_deepseg registers seg_sc_lesion_t2w_sci)")
    assert sct.install_hook(site_dir=site_dir, require_sct=False)[0].startswith("unchanged: ")
    assert sct.install_hook(replace_builtin=True, site_dir=site_dir, require_sct=False)[0].startswith("updated: ")
    assert "replace_builtin=True" in pth.read_text()
    assert sct.uninstall_hook(site_dir=site_dir)[0].startswith("removed: ")
    assert not pth.exists()
    assert sct.uninstall_hook(site_dir=site_dir)[0].startswith("unchanged: ")
    pth.write_text("import something_else\n")
    with pytest.raises(InstallError, match="not written by sct_task_sciseg"):
        sct.uninstall_hook(site_dir=site_dir)
    assert pth.exists()


def test_hook_requires_sct_by_default(tmp_path, monkeypatch):
    monkeypatch.setattr(sct_locations, "sct_root", lambda: None)
    with pytest.raises(sct.SctNotFoundError, match="Python of SCT's environment"):
        sct.install_hook(site_dir=tmp_path)
    assert not (tmp_path / sct.PTH_NAME).exists()
    assert sct.deepseg_main(["-h"]) == 2


def test_pth_sorts_after_path_setting_pth_files():
    """site processes .pth files in name order: ours must come after the ones that put packages on the path
    (editable installs, easy-install), or `import sct_task_sciseg` could fail at startup."""
    for other in ("__editable__.sct_task_sciseg-0.1.0.pth", "__editable___sct_task_sciseg_0_1_0_finder.pth",
                  "easy-install.pth", "distutils-precedence.pth", "_virtualenv.pth"):
        assert sorted([other, sct.PTH_NAME])[-1] == sct.PTH_NAME


@pytest.mark.parametrize("ver,style", [("6.5", "flag"), ("7.3", "subcommand")])
def test_sct_detection_without_importing_sct(tmp_path, monkeypatch, ver, style):
    root = write_fake_sct(tmp_path / f"sct{ver}", ver)
    monkeypatch.syspath_prepend(str(root))
    assert sct.sct_root() == root.resolve()
    assert sct.sct_models_dir() == root.resolve() / "data" / "deepseg_models"
    assert sct.sct_version() == ver
    assert sct.sct_cli_style() == style
    assert "spinalcordtoolbox" not in sys.modules
    install_cmd, run_cmd = sct.usage_hint("seg_sc_lesion_t2w_sci", style)
    assert ("-install-task" in install_cmd) == (style == "flag")


def test_deepseg_wrapper_registers_then_runs_scts_main(tmp_path):
    sct_dir = write_fake_sct(tmp_path / "sct", "6.5")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(sct_dir), str(REPO)]))
    r = subprocess.run([sys.executable, "-c", "import sys; from sct_task_sciseg.sct import deepseg_main; "
                        "sys.exit(deepseg_main(['-list-tasks']))"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "seg_sc_lesion_t2w_sci" in json.loads(r.stdout)
    r = subprocess.run([sys.executable, "-c", "import sys; from sct_task_sciseg.sct import deepseg_main; "
                        "sys.exit(deepseg_main(['-bogus']))"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 3


# --------------------------------------------------------------------------------------------------------
# Real SCT (scripts/build_sct_env.sh), selected with SCISEG_SCT_PYTHON
# --------------------------------------------------------------------------------------------------------
SCT_PYTHON = os.environ.get("SCISEG_SCT_PYTHON")
needs_sct = pytest.mark.skipif(
    not SCT_PYTHON or not Path(SCT_PYTHON).is_file(),
    reason="needs a real SCT environment: build one with scripts/build_sct_env.sh and set SCISEG_SCT_PYTHON "
           "to its bin/python")


def run_sct_python(code: str, env=None, cwd=None, timeout=600):
    """SCT's Python, importing this checkout of the package (the environment's own install may be another)."""
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run([SCT_PYTHON, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


@needs_sct
def test_real_sct_registration_and_parser():
    r = run_sct_python('''
        import json
        import spinalcordtoolbox.deepseg.models as m
        from sct_task_sciseg import sct
        reg = sct.register(m)
        from spinalcordtoolbox.scripts import sct_deepseg
        parser = sct_deepseg.get_parser()
        print(json.dumps({"names": reg.names, "replaced": reg.replaced, "features": reg.features,
                          "style": sct.sct_cli_style(), "help": parser.format_help()}))
    ''')
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "seg_sc_lesion_t2w_sci" in out["names"] and "seg_sc_lesion_t2w_sci" in out["help"]
    if out["style"] == "subcommand":  # 7.x
        assert out["replaced"] == [] and out["features"]["task_group"]
    else:  # 6.x
        assert out["replaced"] == ["seg_sc_lesion_t2w_sci"] and not out["features"]["task_group"]


@needs_sct
def test_real_sct_install_and_segment_match_sciseg(tmp_path, release_zip):
    """sct_deepseg (through the wrapper, SCT's model folder redirected to a temporary one) installs from a
    loopback mirror and writes the same masks as sciseg with the same weights."""
    from conftest import T2_FAKE_LESION

    if not T2_FAKE_LESION.is_file() or not Path(release_zip).is_file():
        pytest.skip("needs the embedded release zip and t2_fake_lesion")
    mirror = tmp_path / "mirror"
    (mirror / V2.tag).mkdir(parents=True)
    shutil.copy(release_zip, mirror / V2.tag / V2.asset)
    img = tmp_path / "t2_fake_lesion.nii.gz"
    shutil.copy(T2_FAKE_LESION, img)
    deepseg = tmp_path / "deepseg_models"
    with ReleaseServer(mirror) as srv:
        r = run_sct_python(f'''
            import sys
            import spinalcordtoolbox.deepseg.models as m
            m.__deepseg_dir__ = {str(deepseg)!r}
            from sct_task_sciseg import sct
            style = sct.sct_cli_style()
            args = (["seg_sc_lesion_t2w_sci", "-i", {str(img)!r}] if style == "subcommand"
                    else ["-i", {str(img)!r}, "-task", "seg_sc_lesion_t2w_sci"])
            sys.exit(sct.deepseg_main(args))
        ''', env={"SCISEG_RELEASE_URL": srv.url, "SCISEG_MODELS_DIR": ""}, cwd=tmp_path)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    assert (deepseg / SCISEG.name / V2.tag / "source.json").is_file()
    sct_out = {k: tmp_path / f"t2_fake_lesion_{k}_seg.nii.gz" for k in ("sc", "lesion")}
    r = run_sct_python(f'''
        import json, nibabel as nib, numpy as np
        from sct_task_sciseg.pipeline import Segmenter
        seg = Segmenter("seg_sc_lesion_t2w_sci", "{V2.tag}", models_dir={str(deepseg)!r}, quiet=True)
        out = seg.segment_file({str(img)!r}, {str(tmp_path / "ours.nii.gz")!r})
        res = {{}}
        for name, path in json.loads({json.dumps({k: str(v) for k, v in sct_out.items()})!r}).items():
            a = np.asanyarray(nib.load(path).dataobj)
            b = np.asanyarray(nib.load(str(out[name])).dataobj)
            res[name] = [int(a.sum()), int(b.sum()), int((a != b).sum())]
        print(json.dumps(res))
    ''', env={"SCISEG_MODELS_DIR": ""}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for name, (n_sct, n_ours, n_diff) in res.items():
        assert n_diff == 0, f"{name}: SCT {n_sct} voxels, sciseg {n_ours}, {n_diff} differ"
    assert res["sc"][0] > 0
