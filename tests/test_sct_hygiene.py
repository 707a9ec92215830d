"""SCT's development head, read-only SCT installs and the startup hook's hygiene.

- ``install_model`` as SCT 7.4.dev0 calls it (``custom_url`` a list, PR #5283), on a stand-in of its models module;
- registration all-or-none: a failure midway leaves SCT's ``MODELS``/``TASKS`` and functions as they were;
- read-only SCT: SCT's model folder and site-packages made read-only with a read-only bind mount in a private mount
  namespace (``unshare -m``; needs root, skipped otherwise: root ignores permission bits, a read-only mount it
  does not), in child processes; the same decisions with writability simulated, everywhere;
- the ``PYTHONPATH`` route (nothing written) and the ``.pth`` that removes itself once the package is gone.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sct_task_sciseg import sct
from sct_task_sciseg.errors import SciSegError
from sct_task_sciseg.weights import locations

from test_sct_adapter import (KEY, REPO, SCISEG, V2, fake_models, make_model_zip, run_python, snapshot,
                              write_fake_sct)


@pytest.fixture
def deepseg_dir(tmp_path):
    d = tmp_path / "sct" / "data" / "deepseg_models"
    d.mkdir(parents=True)
    return d


# --------------------------------------------------------------------------------------------------------
# SCT's development head: custom_url is a list
# --------------------------------------------------------------------------------------------------------
def test_sct_7_4_custom_url_list_installs_that_file(deepseg_dir, tmp_path):
    models = fake_models("7.4", deepseg_dir)
    sct.register(models)
    z = make_model_zip(tmp_path / "copy.zip")
    models.install_model(KEY, [str(z)])  # what `sct_deepseg TASK -install -custom-url ZIP` passes on 7.4
    folder = Path(models.folder(KEY))
    source = json.loads((folder / "source.json").read_text())
    assert source["custom"] is True and source["model_urls"] == z.resolve().as_uri()
    assert models.is_up_to_date(str(folder)) is True
    assert models.load_crop_metadata(KEY, str(folder)) == {}  # no cropping for this task
    with pytest.raises(SciSegError, match="one archive; got 2 URLs"):
        models.install_model(KEY, [str(z), str(z)])


@pytest.mark.parametrize("value,expected", [(None, None), ("", None), ("u", "u"), (["u"], "u"), ([], None)])
def test_custom_url_forms(value, expected):
    assert sct.deepseg_models.one_url(value) == expected


# --------------------------------------------------------------------------------------------------------
# All-or-none registration
# --------------------------------------------------------------------------------------------------------
class _FailingTasks(dict):
    """SCT's TASKS dict that refuses the n-th assignment (any failure inside the registration)."""

    def __init__(self, data, fail_at):
        super().__init__(data)
        self.left = fail_at

    def __setitem__(self, key, value):
        self.left -= 1
        if self.left == 0:
            raise RuntimeError("refused")
        super().__setitem__(key, value)

    def __deepcopy__(self, memo):
        return copy.deepcopy(dict(self), memo)


@pytest.mark.parametrize("version", ["6.5", "7.4"])
def test_failed_registration_leaves_scts_dicts_as_they_were(deepseg_dir, version):
    models = fake_models(version, deepseg_dir)
    models.TASKS = _FailingTasks(models.TASKS, fail_at=2)  # 6.5: the second name; 7.4: replace_builtin
    before = snapshot(models)
    with pytest.raises(RuntimeError, match="refused"):
        sct.register(models, replace_builtin=True)
    assert snapshot(models) == before
    assert sct.registration(models) is None
    models.TASKS.left = 10 ** 6
    assert sct.register(models).model.key == KEY  # and a later registration works


def test_sct_without_a_patched_function_is_refused_untouched(deepseg_dir):
    models = fake_models("7.3", deepseg_dir)
    del models.is_up_to_date
    before = copy.deepcopy((models.MODELS, models.TASKS)), models.install_model, models.folder
    with pytest.raises(SciSegError, match="has no is_up_to_date"):
        sct.register(models)
    assert (copy.deepcopy((models.MODELS, models.TASKS)), models.install_model, models.folder) == before


# --------------------------------------------------------------------------------------------------------
# Read-only SCT, simulated (the code asks locations.is_writable, i.e. os.access)
# --------------------------------------------------------------------------------------------------------
def _read_only(monkeypatch, *roots: Path):
    real = locations.is_writable
    ro = [str(r.resolve()) for r in roots]

    def is_writable(path):
        p = str(Path(path).expanduser().absolute())
        return not any(p == r or p.startswith(r + os.sep) for r in ro) and real(path)

    monkeypatch.setattr(locations, "is_writable", is_writable)


def test_read_only_sct_models_go_to_the_user_folder(deepseg_dir, tmp_path, monkeypatch, capsys):
    user = tmp_path / "user_models"
    monkeypatch.setenv("SCISEG_MODELS_DIR", str(user))
    _read_only(monkeypatch, deepseg_dir.parent.parent)
    models = fake_models("7.4", deepseg_dir)
    reg = sct.register(models)
    assert reg.model.models_dir == str(user) and models.folder(KEY) == str(user / KEY)
    assert models.folder("t2star_sc") == str(deepseg_dir / "t2star_sc")  # SCT's own models: SCT's folder
    models.install_model(KEY, [str(make_model_zip(tmp_path / "m.zip"))])
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "read-only" in line] == [
        f"SCT's model folder {deepseg_dir} is read-only: installing into {user} (the user models folder, "
        "$SCISEG_MODELS_DIR to choose another)"]
    assert models.is_up_to_date(models.folder(KEY)) is True
    assert sorted(p.name for p in deepseg_dir.iterdir()) == []
    sct.unregister(models)
    assert models.folder(KEY) == str(deepseg_dir / KEY)


def test_weights_baked_into_a_read_only_sct_are_used_in_place(deepseg_dir, tmp_path, monkeypatch):
    """An image built with the weights in SCT's folder, run read-only (Apptainer): no second copy."""
    from sct_task_sciseg.weights import install

    install(SCISEG, V2.tag, models_dir=deepseg_dir, source=str(make_model_zip(tmp_path / "m.zip")), quiet=True)
    _read_only(monkeypatch, deepseg_dir.parent.parent)
    models = fake_models("7.4", deepseg_dir)
    sct.register(models)
    assert models.folder(KEY) == str(deepseg_dir / KEY)
    assert models.is_up_to_date(models.folder(KEY)) is True
    assert locations.usable_sct_folder(deepseg_dir) and not locations.usable_sct_folder(deepseg_dir / "x" / "y")


def test_sciseg_default_models_folder_skips_a_read_only_sct(tmp_path, monkeypatch):
    root = write_fake_sct(tmp_path / "sct", "7.3")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("SCISEG_MODELS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    sct_dir = root.resolve() / "data" / "deepseg_models"
    assert locations.resolve_models_dir() == sct_dir and locations.read_only_note(sct_dir) is None
    _read_only(monkeypatch, root)
    user = tmp_path / "xdg" / "sct_task_sciseg" / "models"
    assert locations.resolve_models_dir() == user
    assert locations.read_only_note(user) == (f"SCT's model folder {sct_dir} is read-only: installing into {user} "
                                              "(set SCISEG_MODELS_DIR to choose another folder)")


def test_register_sct_writes_nothing_into_a_read_only_site_packages(tmp_path, monkeypatch):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    _read_only(monkeypatch, site_dir)
    lines = sct.install_hook(site_dir=site_dir, require_sct=False, replace_builtin=True)
    assert lines[0] == f"not written: {site_dir / sct.PTH_NAME} (read-only; SCT's environment is left as it is)"
    assert lines[1].endswith(f"export PYTHONPATH={sct.startup_files.startup_dir()}${{PYTHONPATH:+:$PYTHONPATH}} "
                             "SCISEG_SCT_REPLACE_BUILTIN=1")
    assert list(site_dir.iterdir()) == []


# --------------------------------------------------------------------------------------------------------
# Read-only SCT for real: read-only bind mounts in a private mount namespace
# --------------------------------------------------------------------------------------------------------
RO_SCRIPT = 'n=$1; shift; while [ "$n" -gt 0 ]; do mount --bind -o ro "$1" "$1" || exit 97; shift; n=$((n-1)); done; exec "$@"'


def read_only_argv(paths, argv):
    """``argv`` run with each of ``paths`` mounted read-only (a private mount namespace: nothing else sees it)."""
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", RO_SCRIPT, "sh", str(len(paths)),
            *map(str, paths), *map(str, argv)]


@functools.lru_cache(maxsize=None)
def can_mount_read_only() -> bool:
    try:
        probe = subprocess.run(read_only_argv(["/tmp"], ["sh", "-c", "! touch /tmp/.sciseg_ro_probe"]),
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


needs_ro_mount = pytest.mark.skipif(not can_mount_read_only(),
                                    reason="needs `unshare -m` and bind mounts (root in a private mount namespace)")


@needs_ro_mount
def test_read_only_mount_sct_install_goes_to_the_user_folder(tmp_path):
    sct_dir = write_fake_sct(tmp_path / "sct", "7.4")
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    user = tmp_path / "user_models"
    z = make_model_zip(tmp_path / "m.zip")
    code = f'''
        import json, sys
        from sct_task_sciseg import sct
        from sct_task_sciseg.weights import locations
        lines = sct.install_hook(site_dir={str(site_dir)!r})
        import spinalcordtoolbox.deepseg.models as m
        sct.register(m)
        m.install_model({KEY!r}, [{str(z)!r}])
        print(json.dumps({{"hook": lines, "folder": m.folder({KEY!r}), "ok": m.is_up_to_date(m.folder({KEY!r})),
                          "resolved": str(locations.resolve_models_dir())}}))
    '''
    prog = f"import site; site.addsitedir({str(site_dir)!r})\n" + textwrap.dedent(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(sct_dir), str(REPO)]), SCISEG_MODELS_DIR=str(user))
    r = subprocess.run(read_only_argv([sct_dir, site_dir], [sys.executable, "-c", prog]), capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["hook"][0].startswith(f"not written: {site_dir / sct.PTH_NAME} (read-only")
    assert f"weights go to {user} (SCT's {sct_dir.resolve() / 'data' / 'deepseg_models'} is read-only)" in out["hook"][-2]
    assert out["folder"] == str(user / KEY) and out["ok"] is True and out["resolved"] == str(user)
    assert (user / KEY / "source.json").is_file()
    assert sum("is read-only: installing into" in line for line in r.stdout.splitlines()) == 1
    assert list(site_dir.iterdir()) == [] and list((sct_dir / "data" / "deepseg_models").iterdir()) == []


# --------------------------------------------------------------------------------------------------------
# The PYTHONPATH route and the self-removing .pth
# --------------------------------------------------------------------------------------------------------
def test_pythonpath_route_registers_without_any_file(tmp_path):
    sct_dir = write_fake_sct(tmp_path / "sct", "7.4")
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import sys; sys.stderr.write('shadowed sitecustomize ran\\n')\n")
    startup = sct.startup_files.startup_dir()
    assert (startup / "sitecustomize.py").is_file()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(startup), str(sct_dir), str(REPO), str(other)]))
    env.pop("SCISEG_SCT_HOOK", None)
    probe = ("import spinalcordtoolbox.deepseg.models as m; "
             "print(m.TASKS['seg_sc_lesion_t2w_sci']['models'], m.TASKS['lesion_sci_t2']['models'])")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("] [")[0] == f"['{KEY}'" and "model_seg_sci" in r.stdout.split("] [")[1]
    assert r.stderr == "shadowed sitecustomize ran\n"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env=dict(env, SCISEG_SCT_REPLACE_BUILTIN="1"))
    assert r.stdout.strip() == f"['{KEY}'] ['{KEY}']", r.stderr


@pytest.mark.parametrize("leftover", [False, True])
def test_pth_removes_itself_once_the_package_is_gone(tmp_path, leftover):
    """After `pip uninstall`: no warning in any Python start, and the .pth is gone. ``leftover``: pip left the
    package folder behind (e.g. files written into it later), so `sct_task_sciseg` imports as an empty
    namespace package."""
    site_dir = tmp_path / "site"
    sct.install_hook(site_dir=site_dir, require_sct=False)
    pth = site_dir / sct.PTH_NAME
    assert pth.is_file()
    ghost = tmp_path / "ghost"
    (ghost / "sct_task_sciseg" / "__pycache__").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if leftover:
        env["PYTHONPATH"] = str(ghost)
    prog = f"import site; site.addsitedir({str(site_dir)!r}); print('ok')"
    r = subprocess.run([sys.executable, "-S", "-c", prog], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")
    assert not pth.exists()


def test_pth_stays_while_the_package_is_there(tmp_path):
    site_dir = tmp_path / "site"
    sct.install_hook(site_dir=site_dir, require_sct=False)
    sct_dir = write_fake_sct(tmp_path / "sct", "7.3")
    r = run_python("import spinalcordtoolbox.deepseg.models as m; print(sorted(m.TASKS))", site_dir=site_dir,
                   sct_dir=sct_dir)
    assert "seg_sc_lesion_t2w_sci" in r.stdout and r.stderr == ""
    assert (site_dir / sct.PTH_NAME).is_file()
    assert f"remove({str(site_dir / sct.PTH_NAME)!r})" in (site_dir / sct.PTH_NAME).read_text()


# --------------------------------------------------------------------------------------------------------
# Real SCT, read-only, through its own sct_deepseg command (SCISEG_SCT_PYTHONS / SCISEG_SCT_PYTHON)
# --------------------------------------------------------------------------------------------------------
SCT_PYTHONS = [p for p in dict.fromkeys(
    os.environ.get("SCISEG_SCT_PYTHONS", "").split(os.pathsep) + [os.environ.get("SCISEG_SCT_PYTHON", "")]) if p]


def _masks(folder: Path) -> dict:
    import nibabel as nib
    import numpy as np

    found = {}
    for kind in ("sc", "lesion"):
        paths = sorted(folder.glob(f"*_{kind}_seg.nii.gz"))
        assert len(paths) == 1, (kind, sorted(p.name for p in folder.iterdir()))
        found[kind] = np.asanyarray(nib.load(str(paths[0])).dataobj)
    return found


def _tree_listing(*roots: Path) -> list:
    return sorted(os.path.join(d, f) for r in roots for d, _, fs in os.walk(r) if "__pycache__" not in d
                  for f in fs)


@needs_ro_mount
@pytest.mark.skipif(not SCT_PYTHONS, reason="needs real SCT environments (SCISEG_SCT_PYTHONS)")
@pytest.mark.parametrize("python", SCT_PYTHONS)
def test_real_sct_read_only_register_install_segment_replace_unregister(tmp_path, python, release_zip):
    """SCT's checkout and environment mounted read-only; the hook enabled through PYTHONPATH; SCT's own
    sct_deepseg installs the task from `-custom-url ZIP` (a list on 7.4, a string before) into the user models
    folder, segments exactly as `sciseg -precision fp32`, routes lesion_sci_t2 with -replace-builtin; after
    unregistering, sct_deepseg -h is what it was."""
    from conftest import T2_FAKE_LESION

    if not T2_FAKE_LESION.is_file():
        pytest.skip("needs t2_fake_lesion")
    env_dir = Path(python).parent.parent
    bin_dir = Path(python).parent
    info = subprocess.run([python, "-c", "from sct_task_sciseg import sct; print(sct.sct_root()); "
                           "print(sct.sct_cli_style())"], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert info.returncode == 0, info.stderr[-2000:]
    sct_root, style = info.stdout.split()
    sct_root = Path(sct_root)
    ro = [sct_root, env_dir, REPO]
    models = tmp_path / "models"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SCISEG_")}
    base_env.update(PYTHONPATH=str(REPO), SCISEG_MODELS_DIR=str(models), OMP_NUM_THREADS="2")
    startup = str(REPO / "sct_task_sciseg" / "sct_startup")
    hooked_env = dict(base_env, PYTHONPATH=os.pathsep.join([startup, str(REPO)]))

    def run(argv, env, cwd=tmp_path):
        r = subprocess.run(read_only_argv(ro, argv), capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
        assert r.returncode == 0, (argv, r.stdout[-3000:], r.stderr[-3000:])
        return r

    listing = _tree_listing(sct_root, env_dir / "lib")
    help_before = run([bin_dir / "sct_deepseg", "-h"], base_env).stdout
    # register: nothing can be written, so it says which PYTHONPATH enables the hook
    reg = run([bin_dir / "sciseg", "-register-sct"], base_env).stdout
    assert "not written: " in reg and f"export PYTHONPATH={startup}$" in reg, reg
    assert f"weights go to {models} (SCT's" in reg
    listed = run([bin_dir / "sct_deepseg", "-h" if style == "subcommand" else "-list-tasks"], hooked_env).stdout
    assert "seg_sc_lesion_t2w_sci" in listed
    # install through SCT's own command line, from a local zip
    z = make_model_zip(tmp_path / "model.zip")
    install = (["seg_sc_lesion_t2w_sci", "-install", "-custom-url", z] if style == "subcommand"
               else ["-install-task", "seg_sc_lesion_t2w_sci", "-custom-url", z])
    out = run([bin_dir / "sct_deepseg", *install], hooked_env).stdout
    assert sum("is read-only: installing into" in line for line in out.splitlines()) == 1, out
    source = json.loads((models / KEY / "source.json").read_text())
    assert source["custom"] is True and source["model_urls"] == z.resolve().as_uri()
    # segment with SCT, with sciseg's exact mode, and through SCT's own task name with -replace-builtin
    runs = {}
    for name, argv, env in [
        ("sct", ["seg_sc_lesion_t2w_sci"], hooked_env),
        ("builtin", ["lesion_sci_t2"], dict(hooked_env, SCISEG_SCT_REPLACE_BUILTIN="1")),
    ]:
        d = tmp_path / name
        d.mkdir()
        img = d / "t2.nii.gz"
        img.write_bytes(T2_FAKE_LESION.read_bytes())
        args = [*argv, "-i", img] if style == "subcommand" else ["-i", img, "-task", *argv]
        runs[name] = run([bin_dir / "sct_deepseg", *args], env).stdout
    (tmp_path / "exact").mkdir()
    run([bin_dir / "sciseg", "-i", T2_FAKE_LESION, "-o", tmp_path / "exact" / "t2.nii.gz", "-precision", "fp32",
         "-task", f"seg_sc_lesion_t2w_sci@{V2.tag}"], base_env)
    masks = {name: _masks(tmp_path / name) for name in ("sct", "builtin", "exact")}
    for kind in ("sc", "lesion"):
        assert int((masks["sct"][kind] != masks["exact"][kind]).sum()) == 0, kind
        assert int((masks["builtin"][kind] != masks["exact"][kind]).sum()) == 0, kind
    assert int(masks["exact"]["sc"].sum()) > 1000 and int(masks["exact"]["lesion"].sum()) > 0
    assert "model_seg_sci_multiclass_sc_lesion_nnunet" not in runs["builtin"]  # SCT's own model not used
    # unregister: nothing to remove here; without the PYTHONPATH entry SCT is what it was
    assert "remove " + startup in run([bin_dir / "sciseg", "-unregister-sct"], base_env).stdout
    assert run([bin_dir / "sct_deepseg", "-h"], base_env).stdout == help_before
    assert _tree_listing(sct_root, env_dir / "lib") == listing
