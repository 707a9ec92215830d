"""The batch on Dask distributed: a LocalCluster, separate `dask scheduler` / `dask worker` processes with one
worker killed mid-scan, a scan that kills two workers, and the SLURM job script (no SLURM needed).

Real processes on 127.0.0.1 only; the phantom-trained model; small phantom scans in a BIDS layout.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli
from sct_task_sciseg.batch.executors import cluster_shape

try:
    import distributed  # noqa: F401
    import dask_jobqueue  # noqa: F401
    HAVE_DASK = True
except ImportError:
    HAVE_DASK = False

needs_dask = pytest.mark.skipif(not HAVE_DASK, reason='Dask not installed: pip install -e ".[cluster]"')
N_SCANS = 6


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SCISEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "export_cache"))


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    """A BIDS dataset of small synthetic T2w phantoms, one per subject (drawn in a fresh process, whatever
    state earlier tests left this one's thread pools in)."""
    root = tmp_path_factory.mktemp("bids")
    code = ("import sys, nibabel as nib\n"
            "from pathlib import Path\n"
            "from sct_task_sciseg.demo.phantom import make_phantom\n"
            f"for i in range(1, {N_SCANS + 1}):\n"
            f"    anat = Path({str(root)!r}) / f'sub-{{i:02d}}' / 'anat'\n"
            "    anat.mkdir(parents=True)\n"
            "    nib.save(make_phantom(i)[0], str(anat / f'sub-{i:02d}_T2w.nii.gz'))\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    (root / "dataset_description.json").write_text('{"Name": "phantoms", "BIDSVersion": "1.8.0"}')
    return root


@pytest.fixture(scope="session")
def models_dir(installed_model) -> str:
    return str(installed_model.path.parent.parent)


@pytest.fixture(scope="session")
def serial(dataset, models_dir, tmp_path_factory) -> dict:
    """The in-process batch's outputs (the reference): relative path → voxels, and sidecars."""
    from sct_task_sciseg import segment_many
    out = tmp_path_factory.mktemp("serial")
    jobs = segment_many([dataset], f"{out}/", threads=1, models_dir=models_dir, quiet=True)
    assert [j.status for j in jobs] == ["done"] * N_SCANS
    return _outputs(out)


def _outputs(root: Path) -> dict:
    """Every file under ``root``: masks as arrays, sidecars as dicts (anything else fails the comparison)."""
    found = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            found[rel] = (np.asanyarray(nib.load(str(p)).dataobj) if p.name.endswith(".nii.gz")
                          else json.loads(p.read_text()) if p.suffix == ".json" else p.read_bytes())
    return found


def _assert_same(found: dict, expected: dict) -> None:
    assert sorted(found) == sorted(expected)  # every output exactly once, nothing else (no temporary files)
    for rel, value in expected.items():
        if isinstance(value, np.ndarray):
            assert found[rel].dtype == value.dtype and np.array_equal(found[rel], value), rel
        else:
            assert found[rel] == value, rel


def test_cluster_shape_never_oversubscribes():
    gib = 2 ** 30
    assert cluster_shape(2, 64 * gib) == (2, 1)
    assert cluster_shape(16, 24 * gib) == (8, 2)  # memory for 8 workers: the other cores become threads
    assert cluster_shape(8, 16 * gib) == (4, 2)  # memory for 5: 4 × 2 fills the cores, 5 × 1 would not
    assert cluster_shape(16, 64 * gib, threads=4) == (4, 4)
    assert cluster_shape(16, 64 * gib, workers=3) == (3, 5)
    assert cluster_shape(2, 1 * gib) == (1, 2)
    assert cluster_shape(2, None, workers=4, threads=4) == (4, 4)  # both given: as asked


def test_scheduler_without_dask_says_what_to_install(dataset, tmp_path):
    code = ("import sys\n"
            "for name in ('dask', 'distributed', 'dask_jobqueue'): sys.modules[name] = None\n"
            "from sct_task_sciseg.cli import main\n"
            f"sys.exit(main(['-i', {str(dataset)!r}, '-o', {str(tmp_path)!r} + '/', '-scheduler', 'local']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        'sciseg: error: running on a cluster needs dask: pip install "sct_task_sciseg[cluster]"']
    assert not list(tmp_path.iterdir())


@needs_dask
def test_local_cluster_with_own_client_matches_serial_and_resumes(dataset, models_dir, serial, tmp_path):
    from distributed import Client, LocalCluster
    from sct_task_sciseg import segment_many

    out = tmp_path / "deriv"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        jobs = segment_many([dataset], f"{out}/", client=client, models_dir=models_dir, quiet=True)
        assert [j.status for j in jobs] == ["done"] * N_SCANS, [j.reason for j in jobs]
        assert len({j.stats["worker"] for j in jobs}) == 2  # both workers segmented
        assert all(j.counts["sc"] > 500 for j in jobs)
        _assert_same(_outputs(out), serial)
        # resume with the same client: only the scan whose mask was removed runs again
        (out / "sub-03" / "anat" / "sub-03_T2w_label-lesion_seg.nii.gz").unlink()  # BIDS names
        again = segment_many([dataset], f"{out}/", client=client, models_dir=models_dir, quiet=True)
        assert [j.status for j in again] == ["skipped"] * 2 + ["done"] + ["skipped"] * 3
        assert client.run_on_scheduler(_allowed_failures) == 3  # dask's default, restored after each run
    _assert_same(_outputs(out), serial)
    # the same outputs are up to date for the CLI on a local cluster too: nothing to run, no cluster started
    r = run_cli("-i", dataset, "-o", f"{out}/", "-scheduler", "local", "-workers", "1", "-threads", "1",
                env={"SCISEG_MODELS_DIR": models_dir})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "local cluster:" not in r.stdout, r.stdout
    assert f"done: 0 segmented, 0 failed, {N_SCANS} skipped" in r.stdout


_allowed_failures = lambda dask_scheduler: dask_scheduler.allowed_failures  # noqa: E731 - pickled by value


def _start(args, log: Path, cwd: Path, env: dict) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("dask")
    return subprocess.Popen([str(exe), *args], stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=cwd,
                            env=dict(os.environ, **env))


@needs_dask
def test_worker_killed_mid_scan_every_output_once_and_identical(dataset, models_dir, serial, tmp_path):
    """`dask scheduler` + two `dask worker` processes (no nanny, run elsewhere, with no models folder of their
    own); one is SIGKILLed while it segments a scan; the CLI run (with -qc) completes with every output once."""
    from distributed import Client

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    no_models = {"SCISEG_MODELS_DIR": str(tmp_path / "empty-models")}  # the workers never look there
    sched_file = tmp_path / "scheduler.json"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
                     "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log", elsewhere, no_models)]
    try:
        deadline = time.time() + 60
        while not sched_file.is_file() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for name in ("a", "b"):
            procs.append(_start(["worker", address, "--nthreads", "1", "--no-nanny", "--name", name,
                                 "--host", "127.0.0.1"], tmp_path / f"worker-{name}.log", elsewhere, no_models))
        with Client(address, timeout="60s") as watcher:
            watcher.wait_for_workers(2, timeout=120)
            pids = watcher.run(os.getpid)
            victim = next(a for a, pid in pids.items() if pid == procs[1].pid)
            out = tmp_path / "deriv"
            cmd = [str(Path(sys.executable).with_name("sciseg")), "-i", str(dataset), "-o", f"{out}/",
                   "-scheduler", address, "-v", "2", "-qc", str(tmp_path / "qc")]
            run = subprocess.Popen(cmd, stdout=open(tmp_path / "sciseg.log", "w"),
                                   stderr=open(tmp_path / "sciseg.err", "w"),
                                   env=dict(os.environ, SCISEG_MODELS_DIR=models_dir))
            killed = _kill_mid_scan(watcher, victim, procs[1], out, run)
            assert run.wait(timeout=300) == 0, (tmp_path / "sciseg.err").read_text()
            assert watcher.run_on_scheduler(_allowed_failures) == 3
        text = (tmp_path / "sciseg.log").read_text()
        assert re.search(rf"^scheduler {re.escape(address)}: 2 workers; dashboard: http://127\.0\.0\.1:\d+/status$",
                         text, re.M), text
        assert f"done: {N_SCANS} segmented, 0 failed, 0 skipped" in text
        _assert_same(_outputs(out), serial)
        # QC drawn by the workers into one report: one entry per scan (the retried one replaced, not doubled)
        entries = [json.loads(p.read_text()) for p in (tmp_path / "qc" / "entries").glob("*.json")]
        assert sorted(e["subject"] for e in entries) == [f"sub-{i:02d}" for i in range(1, N_SCANS + 1)]
        index = (tmp_path / "qc" / "index.html").read_text()
        assert all(f"sub-{i:02d}_T2w.nii.gz" in index for i in range(1, N_SCANS + 1))
        # the killed worker's scan was segmented again, on the other worker
        workers = dict(re.findall(r"\] \S*/(sub-\d+_T2w)\.nii\.gz → .*\n  stats: .*\"worker\": \"([^\"]+)\"", text))
        assert len(workers) == N_SCANS and workers[killed] != victim
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)


def _kill_mid_scan(watcher, victim: str, proc: subprocess.Popen, out: Path, run: subprocess.Popen) -> str:
    """Wait until ``victim`` runs a scan whose outputs do not exist yet, after a first scan is done, then
    SIGKILL it; returns that scan's name."""
    deadline = time.time() + 240
    while time.time() < deadline and run.poll() is None:
        if list(out.rglob("*_sc_seg.nii.gz")):
            for key in watcher.processing().get(victim, ()):
                scan = re.match(r"sciseg-(sub-\d+_T2w)\.nii\.gz-", str(key))
                if scan and not list(out.rglob(f"{scan.group(1)}_sc_seg.nii.gz")):
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    return scan.group(1)
        time.sleep(0.02)
    raise AssertionError("the victim worker never ran a scan after the first one was done")


class KillOn:
    """A per-scan hook that takes its worker down (as a crash in native code would) on one scan."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, job, result) -> None:
        if job.path.name == self.name:
            os.kill(os.getpid(), signal.SIGKILL)


@needs_dask
def test_scan_that_kills_two_workers_is_reported_failed(dataset, models_dir, tmp_path):
    from distributed import Client, LocalCluster
    from sct_task_sciseg import segment_many

    out = tmp_path / "deriv"
    scans = [dataset / "sub-01" / "anat" / "sub-01_T2w.nii.gz", dataset / "sub-02" / "anat" / "sub-02_T2w.nii.gz"]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", silence_logs=50) as cluster, Client(cluster) as client:
        jobs = segment_many(scans, f"{out}/", client=client, models_dir=models_dir, quiet=True,
                            on_result=KillOn("sub-01_T2w.nii.gz"))
    assert [j.status for j in jobs] == ["failed", "done"]
    assert jobs[0].reason.startswith(f"{scans[0]}: 2 workers died while segmenting it")
    assert jobs[0].reason.endswith("not retried again")
    assert sorted(p.name for p in out.iterdir()) == ["sub-02_T2w_lesion_seg.json", "sub-02_T2w_lesion_seg.nii.gz",
                                                     "sub-02_T2w_sc_seg.json", "sub-02_T2w_sc_seg.nii.gz"]


@needs_dask
def test_slurm_job_script_from_config_file_and_flags(tmp_path):
    from sct_task_sciseg.batch.cluster import slurm_cluster
    from sct_task_sciseg.batch.executors import SlurmOptions

    config = tmp_path / "slurm.yaml"
    config.write_text("jobqueue:\n  slurm:\n    queue: short\n    account: lab-sci\n    cores: 8\n"
                      "    memory: 32GB\n    walltime: '01:00:00'\n"
                      "    job-script-prologue: ['module load python/3.11']\n"
                      "    scheduler-options: {host: 127.0.0.1}\n")
    options = SlurmOptions(walltime="02:30:00", config_file=str(config),
                           prologue=("module load python/3.11", "source /shared/sciseg/.venv/bin/activate"))
    with slurm_cluster(options, threads=2, dashboard=":0") as cluster:
        script = cluster.job_script()
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    lines = script.splitlines()
    for directive in ("#SBATCH -p short", "#SBATCH -A lab-sci", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=30G",
                      "#SBATCH -t 02:30:00"):
        assert directive in lines, script
    worker = next(i for i, ln in enumerate(lines) if "distributed.cli.dask_worker" in ln)
    assert lines.index("module load python/3.11") < lines.index("source /shared/sciseg/.venv/bin/activate") < worker
    assert "--nthreads 2" in lines[worker] and "--nworkers 4" in lines[worker]
    assert "--memory-limit 7.45GiB" in lines[worker]
