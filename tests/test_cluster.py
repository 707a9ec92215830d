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
import urllib.error
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import SCISEG_COMMAND, run_cli
from sct_task_sciseg.batch.sizing import cluster_shape

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
        client.run(_torch_threads, 2)
        jobs = segment_many([dataset], f"{out}/", client=client, models_dir=models_dir, quiet=True)
        assert [j.status for j in jobs] == ["done"] * N_SCANS, [j.reason for j in jobs]
        assert set(client.run(_torch_threads).values()) == {2}  # the user's workers: not tuned
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


def _torch_threads(set_to=None) -> int:
    import torch
    if set_to:
        torch.set_num_threads(set_to)
    return torch.get_num_threads()


def _start(args, log: Path, cwd: Path, env: dict) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("dask")
    return subprocess.Popen([str(exe), *args], stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=cwd,
                            env=dict(os.environ, **env))


KILL_PRELOAD = Path(__file__).with_name("kill_preload.py")


@needs_dask
def test_worker_killed_mid_scan_every_output_once_and_identical(dataset, models_dir, serial, tmp_path):
    """`dask scheduler` + two `dask worker` processes (no nanny, run elsewhere, with no models folder of their
    own); one SIGKILLs itself while it runs its second scan, once its first one was delivered
    (tests/kill_preload.py, on that worker only); the CLI run (with -qc) completes with every output once.

    The victim gets a second scan: the batch lets a 1-thread worker hold one scan at a time (saturation 1.0)
    and the scheduler hands the queued ones to workers as they free up, so when the victim finishes its first of
    the 6 similar scans it is given the next one, unless the other worker has meanwhile finished 4 whole scans."""
    from distributed import Client
    from kill_preload import RECORD_ENV

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    no_models = {"SCISEG_MODELS_DIR": str(tmp_path / "empty-models")}  # the workers never look there
    record = tmp_path / "killed-scan"
    sched_file = tmp_path / "scheduler.json"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
                     "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log", elsewhere, no_models)]
    try:
        deadline = time.time() + 60
        while not sched_file.is_file() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for name, extra, env in (("a", ["--preload", str(KILL_PRELOAD)], {RECORD_ENV: str(record)}), ("b", [], {})):
            procs.append(_start(["worker", address, "--nthreads", "1", "--no-nanny", "--name", name,
                                 "--host", "127.0.0.1", *extra], tmp_path / f"worker-{name}.log", elsewhere,
                                dict(no_models, **env)))
        with Client(address, timeout="60s") as watcher:
            watcher.wait_for_workers(2, timeout=120)
            pids = watcher.run(os.getpid)
            victim = next(a for a, pid in pids.items() if pid == procs[1].pid)
            out = tmp_path / "deriv"
            cmd = [*SCISEG_COMMAND, "-i", str(dataset), "-o", f"{out}/",
                   "-scheduler", address, "-v", "2", "-qc", str(tmp_path / "qc")]
            run = subprocess.Popen(cmd, stdout=open(tmp_path / "sciseg.log", "w"),
                                   stderr=open(tmp_path / "sciseg.err", "w"),
                                   env=dict(os.environ, SCISEG_MODELS_DIR=models_dir))
            assert run.wait(timeout=300) == 0, (tmp_path / "sciseg.err").read_text()
            # the run cannot end before the victim died: the scan it was starting had to be redone elsewhere
            try:
                code = procs[1].wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = "alive: it never started a second scan"
            assert code == -signal.SIGKILL, (code, (tmp_path / "worker-a.log").read_text())
            killed = record.read_text()
            assert re.fullmatch(r"sub-\d+_T2w", killed), killed
            assert watcher.run_on_scheduler(_allowed_failures) == 3
            assert list(watcher.scheduler_info()["workers"]) == [next(a for a in pids if a != victim)]
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
        # the killed worker's scan was segmented again, on the other worker; its first scan stayed its own
        workers = dict(re.findall(r"\] \S*/(sub-\d+_T2w)\.nii\.gz → .*\n  stats: .*\"worker\": \"([^\"]+)\"", text))
        assert len(workers) == N_SCANS and workers[killed] != victim
        assert list(workers.values()).count(victim) == 1, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)


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
    names = sorted(p.name for p in out.iterdir())
    done = ["sub-02_T2w_lesion_seg.json", "sub-02_T2w_lesion_seg.nii.gz", "sub-02_T2w_sc_seg.json",
            "sub-02_T2w_sc_seg.nii.gz"]
    # the hook runs once sub-01's set is written (QC never runs before the files exist): its set is whole
    assert names in (done, sorted(done + [n.replace("sub-02", "sub-01") for n in done])), names


@needs_dask
def test_slurm_job_script_from_config_file_and_flags(tmp_path):
    """The README's slurm.yaml read over dask-jobqueue's defaults (an empty ``jobqueue: {}`` left by the old
    loader wiped them), flags over the file; workers run under TLS, with no dashboard, logs in their folder."""
    import dask
    from sct_task_sciseg.batch.backends import ClusterSpec, JobqueueOptions
    from sct_task_sciseg.batch.connect import read_cluster_config
    from sct_task_sciseg.batch.jobqueue import job_threads, make_cluster

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    config = tmp_path / "slurm.yaml"
    config.write_text(re.search(r"```yaml\n(# slurm\.yaml\n.*?)```", readme, re.S).group(1))
    flat = read_cluster_config(str(config))
    assert "jobqueue" not in flat and flat["jobqueue.slurm.cores"] == 32
    options = JobqueueOptions(walltime="02:30:00", config_file=str(config),
                              prologue=("module load python/3.11", "source /shared/sciseg/.venv/bin/activate"))
    spec = ClusterSpec("slurm", threads=2, slurm=options, logs=str(tmp_path / "logs"))
    assert job_threads(spec) == 2
    import psutil
    with dask.config.set(flat), make_cluster(spec, tmp_path / "logs", None) as cluster:
        script = cluster.job_script()
        port = int(cluster.scheduler_address.rsplit(":", 1)[1])
        http = {c.laddr.ip for c in psutil.Process().net_connections("inet")
                if c.status == "LISTEN" and c.laddr.port != port}
        assert http == {"127.0.0.1"}  # the scheduler's HTTP routes (no dashboard): loopback only
    lines = script.splitlines()
    for directive in ("#SBATCH -p cpu", "#SBATCH -A lab-sci", "#SBATCH --cpus-per-task=32", "#SBATCH --mem=90G",
                      "#SBATCH -t 02:30:00", f"#SBATCH -e {tmp_path}/logs/dask-worker-%J.err"):
        assert directive in lines, script
    worker = next(i for i, ln in enumerate(lines) if "distributed.cli.dask_worker" in ln)
    assert lines.index("module load python/3.11") < lines.index("source /shared/sciseg/.venv/bin/activate") < worker
    assert "--nthreads 2" in lines[worker] and "--nworkers 16" in lines[worker], lines[worker]
    assert "--no-dashboard" in lines[worker] and "--local-directory $TMPDIR" in lines[worker]


@needs_dask
def test_threads_are_checked_against_a_jobs_cores_not_this_machine():
    from sct_task_sciseg.batch.backends import ClusterSpec, JobqueueOptions
    from sct_task_sciseg.batch.jobqueue import job_options
    from sct_task_sciseg.cli.parser import build_parser, check_args
    from sct_task_sciseg.errors import SciSegError
    from sct_task_sciseg.pipeline.config import SegmenterConfig

    many = os.cpu_count() * 4
    parser = build_parser()
    args = parser.parse_args(["-i", "x.nii.gz", "-scheduler", "slurm", "-threads", str(many),
                              "-slurm-cores", str(many)])
    check_args(parser, args)  # not refused on this machine's CPUs
    assert SegmenterConfig(threads=many).threads == many
    spec = ClusterSpec("slurm", threads=many, slurm=JobqueueOptions(cores=many, memory=f"{many * 4}GB"))
    assert job_options(spec)["processes"] == 1
    with pytest.raises(SciSegError, match=rf"^-threads {many + 1}: a job has {many} cores \(-slurm-cores\): "
                                          rf"use 1 to {many}$"):
        job_options(ClusterSpec("slurm", threads=many + 1, slurm=JobqueueOptions(cores=many, memory="8GB")))


@needs_dask
def test_local_cluster_listens_on_loopback_only_and_caps_workers(capsys, caplog):
    """-workers 1000 starts what this machine holds, with one line; the scheduler, workers and nannies listen
    on 127.0.0.1 only, and no dashboard is served unless asked for."""
    import psutil
    from sct_task_sciseg.batch.backends import ClusterSpec
    from sct_task_sciseg.batch.connect import open_local
    from sct_task_sciseg.batch.sizing import most_workers
    from sct_task_sciseg.machine import cores as machine_cores, total_memory as machine_memory

    most = most_workers(machine_cores(), machine_memory())
    with open_local(ClusterSpec("local", workers=1000, threads=1), say=print) as (executor, threads):
        client = executor.client
        assert len(client.nthreads()) == most and threads == 1
        listening = client.run(_listening) | {"scheduler": client.run_on_scheduler(_listening)}
        port = client.scheduler_info()["services"]["dashboard"]  # the HTTP routes (health, metrics)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30)  # no dashboard page
    hosts = {ip for ips in listening.values() for ip in ips}
    assert hosts == {"127.0.0.1"}, listening
    own = {c.laddr.ip for c in psutil.Process().net_connections("inet") if c.status == "LISTEN"}
    assert own <= {"127.0.0.1"}, own  # the scheduler runs in this process
    out = capsys.readouterr().out
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"][0] == (f"-workers 1000: this machine holds {most} "
                                   f"({machine_cores()} cores, {machine_memory() / 2 ** 30:.1f} GiB at 3 GiB per "
                                   f"worker); starting {most}")
    assert f"local cluster: {most} workers x 1 threads; no dashboard (-dashboard to serve one)" in out


def _listening():
    import os as _os

    import psutil
    procs = [psutil.Process(_os.getpid())]
    procs += [procs[0].parent()] if procs[0].parent() else []  # the nanny
    return sorted({c.laddr.ip for p in procs for c in p.net_connections("inet") if c.status == "LISTEN"})


@needs_dask
def test_tcp_scheduler_pointed_at_an_http_port_fails_fast(dataset, models_dir, tmp_path):
    server = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        port = re.search(r"port (\d+)", server.stdout.readline()).group(1)
        t0 = time.time()
        r = run_cli("-i", dataset, "-o", f"{tmp_path}/out/", "-scheduler", f"tcp://127.0.0.1:{port}",
                    env={"SCISEG_MODELS_DIR": models_dir}, timeout=120)
        seconds = time.time() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"sciseg: error: -scheduler tcp://127.0.0.1:{port}: the port accepts connections but no Dask scheduler "
        "answered within 5 s (an HTTP port, such as the dashboard's?)"], r.stderr
    assert seconds < 90


def test_parts_cover_the_inputs_once_in_natural_order(monkeypatch):
    from sct_task_sciseg.batch.inputs import Item
    from sct_task_sciseg.batch.parts import parse_part, select_part

    items = [Item(Path(f"/d/sub-{i}/anat/sub-{i}_T2w.nii.gz")) for i in (10, 2, 1, 11, 3)]
    parts = [[it.path.parent.parent.name for it in select_part(items, (k, 3))] for k in range(3)]
    assert parts == [["sub-1", "sub-10"], ["sub-2", "sub-11"], ["sub-3"]]
    assert select_part(list(reversed(items)), (1, 3)) == select_part(items, (1, 3))
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert parse_part("array", env) == (2, 4) and parse_part("3/10") == (3, 10)
    for bad in ("10/10", "-1/3", "1/0", "a/b"):
        with pytest.raises(ValueError, match="expected K/N with 0 <= K < N"):
            parse_part(bad)
    with pytest.raises(ValueError, match="not inside a SLURM array job"):
        parse_part("array", {})


def test_summarize_names_every_scan_not_done_and_segments_nothing(dataset, models_dir, tmp_path):
    r = run_cli("-i", dataset, "-o", f"{tmp_path}/out/", "-summarize", env={"SCISEG_MODELS_DIR": models_dir})
    assert r.returncode == 1
    errors = r.stderr.strip().splitlines()
    assert len(errors) == N_SCANS and all(e.endswith("no up-to-date outputs (its part has not run, or failed)")
                                          for e in errors), r.stderr
    assert f"done: 0 segmented, {N_SCANS} failed, 0 skipped" in r.stdout
    assert not list((tmp_path / "out").rglob("*.nii.gz"))


def test_importing_dask_jobqueue_keeps_the_sigint_handler():
    code = ("import signal\n"
            "mine = lambda *a: None\n"
            "signal.signal(signal.SIGINT, mine)\n"
            "from sct_task_sciseg.batch.jobqueue import import_jobqueue\n"
            "import_jobqueue()\n"
            "assert signal.getsignal(signal.SIGINT) is mine, signal.getsignal(signal.SIGINT)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@needs_dask
def test_plain_tcp_scheduler_off_loopback_gets_one_warning_line(caplog):
    """A plain tcp:// scheduler off loopback gets one line saying what it exposes; on loopback none. (Only
    loopback is connected to here; the off-loopback address is judged, not reached.)"""
    from distributed import LocalCluster
    from sct_task_sciseg.batch.backends import ClusterSpec
    from sct_task_sciseg.batch.connect import open_address, plain_tcp_exposure

    assert plain_tcp_exposure("tcp://10.1.2.3:8786") == (
        "-scheduler tcp://10.1.2.3:8786 is unencrypted and unauthenticated: anyone who can reach 10.1.2.3 can run "
        "code as the workers' user and read the scans; use tls:// with certificates")
    assert plain_tcp_exposure("tcp://node01.cluster:8786").startswith("-scheduler tcp://node01.cluster:8786 is ")
    assert plain_tcp_exposure("tcp://127.0.0.1:8786") is None and plain_tcp_exposure("tcp://localhost:1") is None
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None, silence_logs=50) as cluster:
        with open_address(ClusterSpec(cluster.scheduler_address), say=print) as (executor, threads):
            assert executor.tune is False and threads is None  # the user's workers: never tuned
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


def _finished_job(job):
    return job


@needs_dask
def test_a_result_lost_with_its_worker_never_blocks_the_watch():
    """A scan finished on a worker that then died (its job came back to no one): the scheduler must compute
    it again, and while no worker is left the executor keeps calling its watch (which stops the batch), where
    it used to wait for the result forever."""
    from distributed import Client, LocalCluster
    from sct_task_sciseg.batch.cluster import DaskExecutor
    from sct_task_sciseg.batch.inputs import Item
    from sct_task_sciseg.batch.runner import Job
    from sct_task_sciseg.errors import SciSegError

    calls = []

    def watch(left):
        calls.append(left)
        raise SciSegError("every worker job is gone")

    job = Job(Item(Path("sub-01_T2w.nii.gz")))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        future = client.submit(_finished_job, job, key="sciseg-sub-01-0")
        future.result(timeout=60)
        cluster.scale(0)
        deadline = time.time() + 60
        while client.nthreads() and time.time() < deadline:
            time.sleep(0.1)
        t0 = time.time()
        with pytest.raises(SciSegError, match="every worker job is gone"):
            DaskExecutor(client, watch=watch)._fetch(future, {future.key: job})
        assert time.time() - t0 < 30 and calls == [["sub-01_T2w.nii.gz"]]


#: A child Python that runs ``sciseg`` (``cli.main``) with the command's stop handler, and makes Ctrl-C arrive
#: inside a garbage-collector callback of the main thread, once the first scan's masks exist: there Python
#: swallows the handler's KeyboardInterrupt ("Exception ignored in ..."), as it did inside Dask's own GC
#: callback on a real SLURM run. The batch must still stop, at its next step.
SWALLOWED_CTRL_C = """
import gc, os, signal, sys, threading
from pathlib import Path
from sct_task_sciseg import stopping
from sct_task_sciseg.cli import main

out, fired, calls = Path(sys.argv[1]), [], [0]

def ctrl_c_inside_gc(phase, info):
    if fired or phase != "start" or threading.current_thread() is not threading.main_thread():
        return
    calls[0] += 1
    if calls[0] % 50:  # a look at the folder every 50 collections of the main thread
        return
    if next(out.rglob("*_label-SC_seg.nii.gz"), None) is not None:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs here, inside the callback, and its exception is swallowed
            pass

signal.signal(signal.SIGINT, stopping.on_signal)
gc.set_threshold(1, 10 ** 6, 10 ** 6)
gc.callbacks.append(ctrl_c_inside_gc)
code = main(sys.argv[2:])
print("exit", code, "fired", len(fired))
"""


@pytest.mark.parametrize("where", ["in-process", "local"])
def test_ctrl_c_swallowed_by_python_still_stops_the_batch(where, dataset, models_dir, tmp_path):
    if where == "local" and not HAVE_DASK:
        pytest.skip("Dask not installed")
    out = tmp_path / "out"
    cluster = ["-scheduler", "local", "-workers", "1"] if where == "local" else []
    r = subprocess.run([sys.executable, "-c", SWALLOWED_CTRL_C, str(out), "-i", str(dataset), "-o", f"{out}/",
                        "-threads", "1", *cluster], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, SCISEG_MODELS_DIR=models_dir))
    assert "fired 1" in r.stdout, r.stdout + r.stderr  # Ctrl-C came inside the callback ...
    assert "Exception ignored in" in r.stderr and "KeyboardInterrupt" in r.stderr  # ... and Python swallowed it
    assert "exit 130" in r.stdout, r.stdout + r.stderr[-2000:]
    assert re.search(rf"interrupted: \d of {N_SCANS} done; run the same command to resume", r.stderr), r.stderr
    done = sorted(p.name for p in out.rglob("*_label-SC_seg.nii.gz"))
    assert 1 <= len(done) < N_SCANS, done
