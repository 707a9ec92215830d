"""Hostile mirrors and archives against real HTTP servers on 127.0.0.1: endless bodies, trickling servers,
HTML pages served as the zip, zip bombs, a stuck install holding the task lock. Limits are made small
through the environment so that each case fails in seconds."""
from __future__ import annotations

import hashlib
import threading
import time
import zipfile
from pathlib import Path

import pytest

from conftest import V2
from release_server import HTML_PAGE
from sct_task_sciseg.errors import InstallError
from sct_task_sciseg.tasks import SCISEG
from sct_task_sciseg.weights import find_installed, install
from sct_task_sciseg.weights.archive import safe_extract

V2_PATH = f"/{V2.tag}/{V2.asset}"


def tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def downloads(models: Path) -> list:
    return sorted(p.name for p in (models / SCISEG.name / ".downloads").rglob("*") if p.is_file()) \
        if (models / SCISEG.name / ".downloads").exists() else []


@pytest.fixture
def recorded(server, tmp_path, monkeypatch):
    """The default release installed once from the mirror: its sha256 and size are now recorded."""
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    return install(SCISEG, models_dir=tmp_path / "models", quiet=True)


def test_endless_body_stops_at_the_recorded_size_and_the_part_is_removed(server, recorded, tmp_path, release_zip):
    before = tree(recorded.path)
    server.modes[V2_PATH] = ["endless"]
    t0 = time.monotonic()
    with pytest.raises(InstallError) as exc:
        install(SCISEG, models_dir=tmp_path / "models", force=True, quiet=True)
    assert f"body longer than the expected {release_zip.stat().st_size} bytes (recorded at first install" \
        in str(exc.value)
    assert time.monotonic() - t0 < 20
    assert downloads(tmp_path / "models") == []  # no .part left behind
    assert tree(recorded.path) == before


def test_endless_body_of_unknown_size_is_capped(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    monkeypatch.setenv("SCISEG_MAX_DOWNLOAD_MB", "3")
    server.modes[V2_PATH] = ["endless"]
    with pytest.raises(InstallError, match=r"body longer than 3145728 bytes \(SCISEG_MAX_DOWNLOAD_MB\)"):
        install(SCISEG, models_dir=tmp_path / "models", quiet=True)
    assert downloads(tmp_path / "models") == []


def test_a_server_sending_a_byte_at_a_time_fails_in_bounded_time(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    monkeypatch.setenv("SCISEG_MIN_RATE", "1000")
    monkeypatch.setenv("SCISEG_RATE_WINDOW", "1")
    monkeypatch.setenv("SCISEG_RETRIES", "1")
    server.modes[V2_PATH] = ["trickle"]
    t0 = time.monotonic()
    with pytest.raises(InstallError) as exc:
        install(SCISEG, models_dir=tmp_path / "models", quiet=True)
    took = time.monotonic() - t0
    assert "too slow:" in str(exc.value) and "(minimum 1000 bytes/s, SCISEG_MIN_RATE)" in str(exc.value)
    assert 1 <= took < 10
    assert server.gets(V2_PATH) == 2  # retried once (resuming), then gave up
    assert find_installed(SCISEG, models_dir=tmp_path / "models") is None


def test_overall_deadline(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    monkeypatch.setenv("SCISEG_MIN_RATE", "0")
    monkeypatch.setenv("SCISEG_RATE_WINDOW", "0.4")
    monkeypatch.setenv("SCISEG_DOWNLOAD_DEADLINE", "1.5")
    server.modes[V2_PATH] = ["trickle"]
    t0 = time.monotonic()
    with pytest.raises(InstallError, match=r"no complete download within 1.5 s \(SCISEG_DOWNLOAD_DEADLINE\)"):
        install(SCISEG, models_dir=tmp_path / "models", quiet=True)
    assert time.monotonic() - t0 < 8
    assert server.gets(V2_PATH) == 1  # a deadline is not retried on the same URL


def test_html_page_served_as_the_zip_is_named_as_such(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SCISEG_RELEASE_URL", server.url)
    server.modes[V2_PATH] = ["html"]
    with pytest.raises(InstallError) as exc:
        install(SCISEG, models_dir=tmp_path / "models", quiet=True)
    assert "served an HTML page (Content-Type text/html), not the zip archive" in str(exc.value)
    server.modes[V2_PATH] = ["html-binary"]
    with pytest.raises(InstallError) as exc:
        install(SCISEG, models_dir=tmp_path / "models", quiet=True)
    assert "is an HTML page ('Sign in - Hospital network'), not a zip archive" in str(exc.value)
    assert "corrupt" not in str(exc.value) and downloads(tmp_path / "models") == []
    page = tmp_path / "saved-from-browser.zip"
    page.write_bytes(HTML_PAGE)
    with pytest.raises(InstallError, match=r"saved-from-browser\.zip: is an HTML page \('Sign in"):
        install(SCISEG, "mine", models_dir=tmp_path / "models", source=str(page), quiet=True)


def test_html_page_after_a_recorded_install_is_named_not_a_hash_mismatch(server, recorded, tmp_path):
    server.modes[V2_PATH] = ["html-binary"]
    with pytest.raises(InstallError, match=r"is an HTML page \('Sign in - Hospital network'\)"):
        install(SCISEG, models_dir=tmp_path / "models", force=True, quiet=True)


def test_waiting_for_another_install_says_so_and_gives_up(tmp_path, monkeypatch, release_zip):
    from filelock import FileLock

    monkeypatch.setenv("SCISEG_LOCK_TIMEOUT", "1")
    tdir = tmp_path / "models" / SCISEG.name
    tdir.mkdir(parents=True)
    said = []
    holder = FileLock(str(tdir / ".install.lock"))
    holder.acquire()
    try:
        t0 = time.monotonic()
        with pytest.raises(InstallError) as exc:
            install(SCISEG, models_dir=tmp_path / "models", source=str(release_zip), log=said.append)
        took = time.monotonic() - t0
    finally:
        holder.release()
    assert said and said[0].startswith("waiting for another install of this task to finish (lock ")
    assert said[0].endswith("giving up after 1 s")
    assert "another process has been installing this task for more than 1 s; giving up" in str(exc.value)
    assert 0.9 <= took < 5
    # once the other install is done, the wait ends as soon as the lock is free
    held = threading.Event()

    def other_install():
        with FileLock(str(tdir / ".install.lock")):
            held.set()
            time.sleep(0.5)

    thread = threading.Thread(target=other_install)
    thread.start()
    held.wait()
    monkeypatch.setenv("SCISEG_LOCK_TIMEOUT", "30")
    t0 = time.monotonic()
    model = install(SCISEG, "mine", models_dir=tmp_path / "models", source=str(release_zip), quiet=True)
    thread.join()
    assert model.tag == "mine" and time.monotonic() - t0 < 10


# -- zip caps -------------------------------------------------------------------------------------------
def _bomb(path: Path, release_zip: Path, size: int) -> Path:
    """The release plus one member of ``size`` zero bytes (deflates ~1000×)."""
    with zipfile.ZipFile(release_zip) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in src.infolist():
            zf.writestr(info, src.read(info))
        junk = zipfile.ZipInfo("nnUNetTrainerDA5__nnUNetPlans__3d_fullres/fold_1/junk.bin")
        junk.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(junk, "w") as out:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                out.write(block)
    return path


def test_zip_bomb_refused_from_the_directory_before_extracting(tmp_path, release_zip):
    bomb = _bomb(tmp_path / "bomb.zip", release_zip, 64 << 20)
    assert bomb.stat().st_size < 2_000_000
    dest = tmp_path / "out"
    with pytest.raises(InstallError, match=r"member '.*junk\.bin' would unpack from \d+ to 67108864 bytes "
                                           r"\(more than 50×: a zip bomb\); not extracted"):
        safe_extract(bomb, dest)
    assert not dest.exists()  # nothing written
    with pytest.raises(InstallError, match="zip bomb"):
        install(SCISEG, "mine", models_dir=tmp_path / "models", source=str(bomb), quiet=True)


def test_total_size_cap_and_free_disk(tmp_path, release_zip, monkeypatch):
    monkeypatch.setenv("SCISEG_MAX_UNZIPPED_MB", "1")
    with pytest.raises(InstallError, match=r"would unpack to \d+ bytes, more than the 1048576 allowed "
                                           r"\(SCISEG_MAX_UNZIPPED_MB\)"):
        safe_extract(release_zip, tmp_path / "a")
    monkeypatch.setenv("SCISEG_MAX_UNZIPPED_MB", str(1 << 40))
    huge = tmp_path / "huge.zip"
    with zipfile.ZipFile(huge, "w") as zf:  # a directory claiming 1 PiB (zip64), stored: ratio 1
        zf.writestr("model/big.bin", b"x" * 1000)
        zf.filelist[-1].file_size = zf.filelist[-1].compress_size = 1 << 50
    with pytest.raises(InstallError, match=r"would unpack to 1125899906842624 bytes, but .* has only \d+ bytes "
                                           r"free; not extracted"):
        safe_extract(huge, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_member_longer_than_its_directory_entry_is_never_written_past_it(tmp_path, release_zip):
    lying = tmp_path / "lying.zip"
    with zipfile.ZipFile(lying, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model/data.bin", bytes(5 << 20))
        zf.filelist[-1].file_size = 1000
    with pytest.raises(InstallError, match="lying.zip: corrupt"):
        safe_extract(lying, tmp_path / "out")
    written = tmp_path / "out" / "model" / "data.bin"
    assert not written.exists() or written.stat().st_size <= 1000


def test_offline_error_is_short_and_gives_the_exact_command(tmp_path):
    """Nothing listens on the mirror: one line for the retried source at most, then one error line with the
    command that installs the release from a copied zip."""
    from conftest import run_cli
    from sct_task_sciseg.tasks import SCISEG

    release = SCISEG.default_release
    r = run_cli("-install-task", SCISEG.name, env={"SCISEG_RELEASE_URL": "http://127.0.0.1:9",
                                                    "SCISEG_MODELS_DIR": str(tmp_path / "m"),
                                                    "SCISEG_BACKOFF": "0.01", "SCISEG_RETRIES": "3"})
    assert r.returncode == 1
    lines = (r.stdout + r.stderr).strip().splitlines()
    failures = [line for line in lines if "refused the connection" in line]
    assert len(failures) == 2 and all(len(line) < 400 for line in lines), lines  # the retry notice + the error
    error = lines[-1]
    assert error.startswith("sciseg: error: download failed: ")
    assert (f"`sciseg -install-task {SCISEG.name}@{release.tag} -custom-url /path/to/{release.asset}`"
            in error)
