"""`sciseg -scheduler slurm` and array jobs against a real one-node SLURM (scripts/slurm_ci.sh start; CI starts
it before the tests). Skipped, with the reason, where no SLURM answers. Every run is a real process bounded in
time (subprocess timeouts), so a regression fails instead of hanging.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_cluster import N_SCANS, _assert_same, _outputs, dataset, models_dir, needs_dask, serial  # noqa: F401

SCISEG = str(Path(sys.executable).with_name("sciseg"))
JOB = ["-slurm-cores", "1", "-slurm-memory", "2GB", "-threads", "1"]


def _slurm_state() -> str:
    """'' when a SLURM controller answers with an idle or busy node, else why not."""
    if not shutil.which("sbatch"):
        return "no SLURM client (sbatch) here: scripts/slurm_ci.sh start (as root) installs and starts one"
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s"
    states = set(r.stdout.split())
    if r.returncode != 0 or not states & {"idle", "mixed", "allocated"}:
        return f"no SLURM node up (sinfo: {(r.stderr or r.stdout).strip() or 'nothing'}): scripts/slurm_ci.sh start"
    return ""


SLURM_DOWN = _slurm_state()
needs_slurm = pytest.mark.skipif(bool(SLURM_DOWN), reason=SLURM_DOWN)
pytestmark = [needs_dask, needs_slurm]


def _queued() -> list:
    """Job ids pending or running (completing jobs are on their way out)."""
    r = subprocess.run(["squeue", "-h", "-t", "PD,R,CF", "-o", "%i"], capture_output=True, text=True, timeout=30)
    return r.stdout.split()


@pytest.fixture(autouse=True)
def _no_job_left():
    """Every test starts with an empty queue and leaves one behind."""
    deadline = time.time() + 60
    while _queued() and time.time() < deadline:
        time.sleep(0.5)
    assert not _queued(), "jobs of an earlier test are still queued"
    yield
    deadline = time.time() + 30
    while _queued() and time.time() < deadline:
        time.sleep(0.5)
    left = _queued()
    if left:
        subprocess.run(["scancel", *left], timeout=30)
    assert not left, f"jobs left in the queue: {left}"


def _env(models_dir: str) -> dict:
    """The one-node SLURM's scheduler listens on loopback: its workers run on this machine, and tests send
    traffic to loopback only."""
    return dict(os.environ, SCISEG_MODELS_DIR=models_dir, DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS__HOST="127.0.0.1")


def _start(args, models_dir: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([SCISEG, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(models_dir), cwd=cwd)


def _wait_for_line(proc: subprocess.Popen, pattern: str, seconds: float) -> str:
    """The first stdout line matching ``pattern``, read while the process runs (progress is line-buffered
    into a pipe: a block-buffered stdout would only give it at the end)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if re.search(pattern, line):
            assert proc.poll() is None, "the line came only once the process had ended"
            return line
    proc.kill()
    raise AssertionError(f"no line matching {pattern!r} within {seconds} s: {proc.stderr.read()}")


def test_batch_on_slurm_matches_in_process_and_an_up_to_date_rerun_submits_nothing(
        dataset, models_dir, serial, tmp_path):
    out = tmp_path / "deriv"
    r = subprocess.run([SCISEG, "-i", dataset, "-o", f"{out}/", "-scheduler", "slurm", "-slurm-jobs", "2", *JOB],
                       capture_output=True, text=True, env=_env(models_dir), cwd=tmp_path, timeout=480)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SLURM: 2 jobs x 1 workers x 1 threads" in r.stdout and "TLS" in r.stdout
    assert f"done: {N_SCANS} segmented, 0 failed, 0 skipped" in r.stdout
    logs = out / "sciseg_logs"
    assert sorted(p.suffix for p in logs.iterdir()) == [".err", ".err", ".out", ".out"]  # no certificate left
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("slurm-", "dask-worker"))]  # none in cwd
    shutil.move(str(logs), str(tmp_path / "logs-first-run"))
    _assert_same(_outputs(out), serial)
    again = subprocess.run([SCISEG, "-i", dataset, "-o", f"{out}/", "-scheduler", "slurm", *JOB],
                           capture_output=True, text=True, env=_env(models_dir), cwd=tmp_path, timeout=240)
    assert again.returncode == 0, again.stderr
    assert f"done: 0 segmented, 0 failed, {N_SCANS} skipped" in again.stdout
    assert "SLURM:" not in again.stdout and not logs.exists()  # no job submitted


def test_worker_job_cancelled_mid_scan_is_replaced_every_output_once(dataset, models_dir, serial, tmp_path):
    out = tmp_path / "deriv"
    proc = _start(["-i", dataset, "-o", f"{out}/", "-scheduler", "slurm", "-slurm-jobs", "1", *JOB],
                  models_dir, tmp_path)
    try:
        _wait_for_line(proc, r"^\[1/\d+\]", 300)
        jobs = _queued()
        assert len(jobs) == 1
        subprocess.run(["scancel", jobs[0]], check=True, timeout=30)
        stdout, stderr = proc.communicate(timeout=420)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "1 worker job(s) gone: 1 submitted again (1 of at most 1)" in stdout
    assert f"done: {N_SCANS} segmented, 0 failed, 0 skipped" in stdout
    assert len(list((out / "sciseg_logs").glob("*.err"))) == 2  # the cancelled job's and its replacement's
    shutil.rmtree(out / "sciseg_logs")
    _assert_same(_outputs(out), serial)  # every output once, identical, no temporary file left


def test_every_job_gone_ends_the_batch_with_what_is_left(dataset, models_dir, tmp_path):
    out = tmp_path / "deriv"
    proc = _start(["-i", dataset, "-o", f"{out}/", "-scheduler", "slurm", "-slurm-resubmit", "0", *JOB],
                  models_dir, tmp_path)
    try:
        _wait_for_line(proc, r"^\[1/\d+\]", 300)
        subprocess.run(["scancel", *_queued()], check=True, timeout=30)
        t0 = time.time()
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 1
    errors = [ln for ln in stderr.splitlines() if ln.startswith("sciseg: error:")]
    assert len(errors) == 1 and "the worker jobs are gone (1 submitted, 0 replaced, -slurm-resubmit 0)" in errors[0]
    assert re.search(r"; \d scans not done: \S+sub-0\d_T2w\.nii\.gz", errors[0]), errors[0]
    assert "run the same command again to resume" in errors[0]
    assert time.time() - t0 < 120


def test_refused_submission_is_one_line_within_seconds(dataset, models_dir, tmp_path):
    t0 = time.time()
    r = subprocess.run([SCISEG, "-i", dataset, "-o", f"{tmp_path}/out/", "-scheduler", "slurm",
                        "-slurm-queue", "no-such-partition", *JOB],
                       capture_output=True, text=True, env=_env(models_dir), cwd=tmp_path, timeout=120)
    seconds = time.time() - t0
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1:] == r.stderr.strip().splitlines()[-1:]
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("sciseg: error: sbatch refused the worker job: "), r.stderr
    assert "invalid partition" in errors[0].lower()
    assert not list((tmp_path / "out").rglob("*.nii.gz"))
    assert seconds < 90, seconds  # process start, model check and preflight included; sbatch answers at once


def test_ctrl_c_exits_130_and_cancels_every_job(dataset, models_dir, tmp_path):
    proc = _start(["-i", dataset, "-o", f"{tmp_path}/out/", "-scheduler", "slurm", *JOB], models_dir, tmp_path)
    try:
        _wait_for_line(proc, r"^SLURM: ", 300)
        deadline = time.time() + 60
        while not _queued() and time.time() < deadline:
            time.sleep(0.2)
        assert _queued(), "no job was submitted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "sciseg: error: interrupted" in stderr
    assert not _queued()


def test_readme_slurm_yaml_verbatim_reaches_sbatch(dataset, models_dir, tmp_path):
    """The README's slurm.yaml as the configuration: read with dask-jobqueue's defaults kept (a job script
    is made and checked by sbatch, which refuses this test cluster's missing partition `cpu`)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```yaml\n(# slurm\.yaml\n.*?)```", readme, re.S).group(1)
    config = tmp_path / "slurm.yaml"
    config.write_text(block)
    r = subprocess.run([SCISEG, "-i", dataset, "-o", f"{tmp_path}/out/", "-scheduler", "slurm",
                        "-cluster-config", config], capture_output=True, text=True, env=_env(models_dir),
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "sciseg: error: sbatch refused the worker job: sbatch: error: invalid partition specified: cpu "
        "allocation failure: Invalid partition name specified"], r.stderr


def test_client_without_the_run_certificates_is_refused(tmp_path):
    """The scheduler of a SLURM run speaks TLS with certificates made for it: a plain client, and a TLS
    client with other certificates, cannot connect, let alone run anything."""
    from distributed import Client
    from distributed.security import Security
    from sct_task_sciseg.batch.backends import ClusterSpec, JobqueueOptions
    from sct_task_sciseg.batch.jobqueue import open_jobqueue

    import dask

    spec = ClusterSpec("slurm", threads=1, slurm=JobqueueOptions(cores=1, memory="1GB"), logs=str(tmp_path / "logs"))
    loopback = dask.config.set({"jobqueue.slurm.scheduler-options": {"host": "127.0.0.1"}})
    with loopback, open_jobqueue(spec, say=lambda line: None) as (executor, threads):
        address = executor.client.scheduler.address
        assert address.startswith("tls://")
        assert executor.client.run_on_scheduler(lambda: 42) == 42  # the run's own client gets in
        plain = "tcp://" + address[len("tls://"):]
        for target, security in ((plain, None), (address, Security.temporary())):
            with pytest.raises((OSError, TimeoutError)):
                Client(target, security=security, timeout="5s")
        certificates = list((tmp_path / "logs").glob(".tls-*/*"))
        assert certificates and all(p.stat().st_mode & 0o077 == 0 for p in certificates)
    assert not list((tmp_path / "logs").glob(".tls-*"))  # removed at the end


def test_array_job_parts_cover_the_dataset_once_then_summarize(dataset, models_dir, serial, tmp_path):
    out = tmp_path / "deriv"
    wrap = f"{SCISEG} -i {dataset} -o {out}/ -part array -threads 1"
    r = subprocess.run(["sbatch", "--array=1-3", "--wait", "--cpus-per-task=1", "--mem=2G", "-o",
                        str(tmp_path / "part-%a.log"), "--wrap", wrap], capture_output=True, text=True,
                       env=_env(models_dir), cwd=tmp_path, timeout=540)
    assert r.returncode == 0, r.stderr + "".join(p.read_text() for p in tmp_path.glob("part-*.log"))
    logs = {p.name: p.read_text() for p in sorted(tmp_path.glob("part-*.log"))}
    counts = [int(re.search(r"^part \d/3: (\d+) inputs$", text, re.M).group(1)) for text in logs.values()]
    assert counts == [2, 2, 2], logs
    assert all("done: 2 segmented, 0 failed, 0 skipped" in text for text in logs.values()), logs
    _assert_same(_outputs(out), serial)
    s = subprocess.run([SCISEG, "-i", dataset, "-o", f"{out}/", "-summarize", "-threads", "1"],
                       capture_output=True, text=True, env=_env(models_dir), timeout=240)
    assert s.returncode == 0, s.stderr
    assert f"done: 0 segmented, 0 failed, {N_SCANS} skipped" in s.stdout
