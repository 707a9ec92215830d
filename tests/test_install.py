"""The verified installer against a real HTTP server on 127.0.0.1 serving real release zips."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import SCISEG_COMMAND, V1, V2, run_cli
from release_server import ReleaseServer
from sct_task_sciseg.errors import InstallError, ModelError
from sct_task_sciseg.tasks import SCISEG
from sct_task_sciseg.weights import MARKER, ensure_installed, find_installed, install

V2_PATH = f"/{V2.tag}/{V2.asset}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_state(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def assert_nothing_half_installed(models: Path, tag: str = V2.tag) -> None:
    tdir = models / SCISEG.name
    leftovers = [p.name for p in tdir.iterdir() if p.name.startswith((".staging-", ".old-"))] if tdir.exists() else []
    assert leftovers == []
    assert not (tdir / tag).exists()


def test_install_from_mirror_verifies_and_writes_marker_last(server, tmp_path, monkeypatch, release_zip):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    models = tmp_path / "models"
    model = install(SCISEG, models_dir=models, quiet=True)
    assert model.tag == "r20240729"
    assert model.sha256 == sha256(release_zip)
    assert model.size == release_zip.stat().st_size
    assert model.model_folder.name.startswith("nnUNetTrainer") and model.model_folder.name.endswith("3d_fullres")
    marker = json.loads((models / SCISEG.name / "r20240729" / MARKER).read_text())
    assert marker["url"] == server.url + V2_PATH
    assert marker["sha256"] == sha256(release_zip)
    assert {"dataset.json", "plans.json"} <= {Path(f).name for f in marker["files"]}
    trust = json.loads((models / SCISEG.name / "trusted_sha256.json").read_text())
    assert trust["r20240729"]["sha256"] == sha256(release_zip)
    assert server.gets(V2_PATH) == 1
    assert not (models / SCISEG.name / ".downloads" / V2.tag / V2.asset).exists()  # archive not kept


def test_second_install_makes_no_request(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    first = install(SCISEG, models_dir=tmp_path / "m", quiet=True)
    n = len(server.requests)
    again = install(SCISEG, models_dir=tmp_path / "m", quiet=True)
    ensure_installed(SCISEG, models_dir=tmp_path / "m", quiet=True)
    assert again == first
    assert len(server.requests) == n == 1


def test_wrong_pinned_sha256_is_refused_and_nothing_installed(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    pinned = dataclasses.replace(V2, sha256="0" * 64)
    task = dataclasses.replace(SCISEG, releases=(pinned, V1))
    with pytest.raises(InstallError) as exc:
        install(task, models_dir=tmp_path / "m", quiet=True)
    msg = str(exc.value)
    assert server.url + V2_PATH in msg and "does not match" in msg and "pinned" in msg
    assert_nothing_half_installed(tmp_path / "m")
    assert not list((tmp_path / "m").rglob("*.zip*"))


def test_recorded_sha256_protects_later_installs(server, tmp_path, monkeypatch, mirror):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    models = tmp_path / "m"
    install(SCISEG, models_dir=models, quiet=True)
    # upstream "replaces" the asset: a later fresh install must notice
    asset = mirror / V2.tag / V2.asset
    with zipfile.ZipFile(asset, "a") as zf:
        zf.writestr("extra.txt", "changed")
    with pytest.raises(InstallError, match="recorded at first install"):
        install(SCISEG, models_dir=models, force=True, quiet=True)
    assert find_installed(SCISEG, models_dir=models) is not None  # previous install intact


@pytest.mark.parametrize("failure", ["truncate", "reset"])
def test_interrupted_body_is_resumed(server, tmp_path, monkeypatch, failure, release_zip):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    server.modes[V2_PATH] = [failure, "ok"]
    model = install(SCISEG, models_dir=tmp_path / "m", quiet=True)
    assert model.sha256 == sha256(release_zip)
    ranges = [r for p, r in server.requests if p == V2_PATH]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:].rstrip("-")) > 0  # resumed, not restarted


@pytest.mark.parametrize("failure", ["truncate", "reset", "500"])
def test_persistent_failure_gives_one_clear_error(server, tmp_path, monkeypatch, failure):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    server.modes[V2_PATH] = [failure]
    with pytest.raises(InstallError) as exc:
        install(SCISEG, models_dir=tmp_path / "m", quiet=True)
    assert server.url + V2_PATH in str(exc.value) and "SCISEG_RELEASE_URL" in str(exc.value)
    assert "\n" not in str(exc.value)
    assert server.gets(V2_PATH) == 3  # 1 try + 2 retries
    assert_nothing_half_installed(tmp_path / "m")


def test_404_and_500_then_next_mirror(mirror, tmp_path, monkeypatch, release_zip):
    with ReleaseServer(mirror) as a, ReleaseServer(mirror) as b, ReleaseServer(mirror) as c:
        a.modes[V2_PATH] = ["404"]
        b.modes[V2_PATH] = ["500"]
        monkeypatch.setenv("SCISEG_RELEASE_URL", f"{a.url}, {b.url} {c.url}")
        model = install(SCISEG, models_dir=tmp_path / "m", quiet=True)
        assert model.url == c.url + V2_PATH and model.sha256 == sha256(release_zip)
        assert a.gets(V2_PATH) == 1  # 404 is permanent: no retry
        assert b.gets(V2_PATH) == 3  # 500 is retried
        assert c.gets(V2_PATH) == 1


def test_corrupt_zip(mirror, server, tmp_path, monkeypatch):
    asset = mirror / V2.tag / V2.asset
    data = bytearray(asset.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = bytes(4096)
    asset.write_bytes(bytes(data))
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    with pytest.raises(InstallError, match="corrupt|not a valid zip"):
        install(SCISEG, models_dir=tmp_path / "m", quiet=True)
    assert_nothing_half_installed(tmp_path / "m")


def _rezip(src: Path, dst: Path, extra) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info))
        extra(zout)


def test_zip_slip_member_refused(mirror, server, tmp_path, monkeypatch, release_zip):
    _rezip(release_zip, mirror / V2.tag / V2.asset, lambda z: z.writestr("../../evil.txt", "x"))
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    with pytest.raises(InstallError, match="zip-slip"):
        install(SCISEG, models_dir=tmp_path / "m", quiet=True)
    assert not list(tmp_path.rglob("evil.txt"))
    assert_nothing_half_installed(tmp_path / "m")


def test_symlink_member_refused(mirror, server, tmp_path, monkeypatch, release_zip):
    def add_link(z):
        info = zipfile.ZipInfo("nnUNetTrainerDA5__nnUNetPlans__3d_fullres/link")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    _rezip(release_zip, mirror / V2.tag / V2.asset, add_link)
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    with pytest.raises(InstallError, match="symbolic link"):
        install(SCISEG, models_dir=tmp_path / "m", quiet=True)
    assert_nothing_half_installed(tmp_path / "m")


def test_wrong_labels_refused(tmp_path, release_zip):
    src = tmp_path / "model"
    with zipfile.ZipFile(release_zip) as zf:
        zf.extractall(src)
    ds = next(src.rglob("dataset.json"))
    data = json.loads(ds.read_text())
    data["labels"] = {"background": 0, "sc": 1}
    ds.write_text(json.dumps(data))
    with pytest.raises(InstallError, match="do not match the task"):
        install(SCISEG, models_dir=tmp_path / "m", source=str(src), quiet=True)


def test_failed_reinstall_keeps_previous_release(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    models = tmp_path / "m"
    first = install(SCISEG, models_dir=models, quiet=True)
    before = tree_state(first.path)
    server.modes[V2_PATH] = ["reset"]
    with pytest.raises(InstallError):
        install(SCISEG, models_dir=models, force=True, quiet=True)
    assert tree_state(first.path) == before
    assert find_installed(SCISEG, models_dir=models, full_check=True) == first


def test_modified_model_detected_and_reinstalled(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    models = tmp_path / "m"
    model = install(SCISEG, models_dir=models, quiet=True)
    ckpt = next(model.model_folder.glob("fold_*/checkpoint_final.pth"))
    data = bytearray(ckpt.read_bytes())
    data[-10] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="changed since install"):
        find_installed(SCISEG, models_dir=models)
    fixed = ensure_installed(SCISEG, models_dir=models, quiet=True)
    assert find_installed(SCISEG, models_dir=models, full_check=True) == fixed
    assert server.gets(V2_PATH) == 2


def test_local_zip_and_local_folder(tmp_path, release_zip):
    model = install(SCISEG, "r20240130", models_dir=tmp_path / "m", source=str(release_zip), quiet=True)
    assert model.tag == "r20240130" and model.custom and model.sha256 == sha256(release_zip)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(release_zip) as zf:
        zf.extractall(unpacked)
    folder_model = install(SCISEG, "r20240729", models_dir=tmp_path / "m2", source=str(unpacked), quiet=True)
    assert (folder_model.model_folder / "plans.json").read_bytes() == \
        (model.model_folder / "plans.json").read_bytes()
    # a custom install never becomes the trusted record of an official release
    assert not (tmp_path / "m" / SCISEG.name / "trusted_sha256.json").exists()


def test_tag_selection_and_list_tasks_cli(server, tmp_path):
    env = {"SCISEG_RELEASE_URL": server.url, "SCISEG_MODELS_DIR": str(tmp_path / "m")}
    r = run_cli("-install-task", "seg_sc_lesion_t2w_sci@r20240130", env=env)
    assert r.returncode == 0, r.stderr
    assert server.gets(f"/{V1.tag}/{V1.asset}") == 1 and server.gets(V2_PATH) == 0
    r = run_cli("-list-tasks", env=env)
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.startswith("  r2")}
    assert "installed" in lines["r20240130"] and "available" in lines["r20240729"]
    r = run_cli("-install", "lesion_sci_t2@r2024013", env=env)  # alias + unique tag prefix
    assert r.returncode == 0 and len(server.requests) == 1


def test_cli_install_and_failure_line(server, tmp_path):
    env = {"SCISEG_RELEASE_URL": server.url, "SCISEG_MODELS_DIR": str(tmp_path / "m")}
    r = run_cli("-install-task", "seg_sc_lesion_t2w_sci", env=env)
    assert r.returncode == 0, r.stderr
    assert "r20240729" in r.stdout and "publishes no checksum" in r.stderr
    env["SCISEG_MODELS_DIR"] = str(tmp_path / "other")
    server.modes[V2_PATH] = ["404"]
    r = run_cli("-install-task", "seg_sc_lesion_t2w_sci", "-v", "0", env=env)
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("sciseg: error:")]
    assert len(errors) == 1 and server.url + V2_PATH in errors[0] and "HTTP 404" in errors[0]
    r = run_cli("-install-task", "no_such_task", env=env)
    assert r.returncode == 1 and "unknown task 'no_such_task'" in r.stderr


def test_four_concurrent_installs(server, tmp_path, release_zip):
    server.modes[V2_PATH] = ["slow"]
    env = {"SCISEG_RELEASE_URL": server.url, "SCISEG_MODELS_DIR": str(tmp_path / "m")}
    procs = [subprocess.Popen([*SCISEG_COMMAND, "-install-task", "seg_sc_lesion_t2w_sci", "-v", "0"],
                              env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert server.gets(V2_PATH) == 1
    shas = {o[0].split("sha256 ")[1].strip(" )\n") for o in outs}
    assert shas == {sha256(release_zip)}


def test_sigkill_mid_download_then_rerun(server, tmp_path, release_zip):
    server.modes[V2_PATH] = ["slow", "ok"]
    models = tmp_path / "m"
    env = dict(os.environ, SCISEG_RELEASE_URL=server.url, SCISEG_MODELS_DIR=str(models))
    proc = subprocess.Popen([*SCISEG_COMMAND, "-install-task", "seg_sc_lesion_t2w_sci", "-v", "0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = models / SCISEG.name / ".downloads" / V2.tag / (V2.asset + ".part")
    deadline = time.time() + 60
    while time.time() < deadline and not (part.exists() and part.stat().st_size > 200_000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert part.exists() and 0 < part.stat().st_size < release_zip.stat().st_size
    assert find_installed(SCISEG, models_dir=models) is None
    r = run_cli("-install-task", "seg_sc_lesion_t2w_sci", "-v", "0", env={"SCISEG_RELEASE_URL": server.url,
                                                                          "SCISEG_MODELS_DIR": str(models)})
    assert r.returncode == 0, r.stderr
    ranges = [rg for p, rg in server.requests if p == V2_PATH]
    assert ranges[-1] is not None and int(ranges[-1][6:].rstrip("-")) > 0  # resumed after the kill
    model = find_installed(SCISEG, models_dir=models, full_check=True)
    assert model.sha256 == sha256(release_zip)
    assert not part.exists()
    assert not [p for p in (models / SCISEG.name).iterdir() if p.name.startswith(".staging-")]


def test_zip_without_root_folder_installs_under_an_nnunet_name(tmp_path, release_zip):
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(release_zip) as zin, zipfile.ZipFile(flat, "w") as zout:
        for info in zin.infolist():
            if not info.is_dir():
                zout.writestr(info.filename.split("/", 1)[1], zin.read(info))
    model = install(SCISEG, models_dir=tmp_path / "m", source=str(flat), quiet=True)
    assert model.model_folder.name == "nnUNetTrainer__nnUNetPlans__3d_fullres"
    assert (model.model_folder / "plans.json").is_file()
    assert list(model.model_folder.glob("fold_*/checkpoint_final.pth"))
    assert find_installed(SCISEG, models_dir=tmp_path / "m", full_check=True) == model
