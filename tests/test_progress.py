"""Progress within a scan: stages and a bar over the network's tile passes on a terminal, one line per stage
elsewhere, nothing with -v 0; batches keep their per-scan progress."""
from __future__ import annotations

import io
import re

from conftest import T2_FAKE_LESION, needs_data, run_cli
from sct_task_sciseg.batch.progress import ScanProgress
from sct_task_sciseg.pipeline import Segmenter

STAGE_LINES = ["loading the model", "preprocessing", r"network \((\d+) tile passes\)",
               "resampling back to the input grid", "post-processing", "writing outputs"]


def _env(installed_model):
    return {"SCISEG_MODELS_DIR": str(installed_model.model_folder.parents[2])}


@needs_data
def test_one_scan_prints_its_stages_in_order_when_not_a_terminal(installed_model, tmp_path):
    r = run_cli("-i", T2_FAKE_LESION, "-o", tmp_path / "a.nii.gz", "-threads", "2", env=_env(installed_model))
    assert r.returncode == 0, r.stderr
    lines = [line.split(": ", 1)[1] for line in r.stderr.splitlines() if line.startswith(str(T2_FAKE_LESION) + ": ")]
    assert len(lines) == len(STAGE_LINES), r.stderr
    for line, pattern in zip(lines, STAGE_LINES):
        assert re.match(pattern, line), (line, pattern)
    assert int(re.match(STAGE_LINES[2], lines[2]).group(1)) >= 1
    assert "\r" not in r.stderr  # no bar when not on a terminal


@needs_data
def test_quiet_prints_nothing(installed_model, tmp_path):
    r = run_cli("-i", T2_FAKE_LESION, "-o", tmp_path / "a.nii.gz", "-threads", "2", "-v", "0",
                env=_env(installed_model))
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    assert (tmp_path / "a_sc_seg.nii.gz").is_file()


@needs_data
def test_terminal_bar_counts_every_tile_pass_with_eta(segmenter):
    stream = io.StringIO()
    events = []
    progress = ScanProgress("scan", tty=True, stream=stream)

    def both(stage, done, total):
        events.append((stage, done, total))
        progress(stage, done, total)

    tta = Segmenter.from_config(segmenter.config.with_(test_time_aug=True))
    result = tta.segment(T2_FAKE_LESION, progress=both)
    progress.close()
    network = [e for e in events if e[0] == "network"]
    total = network[0][2]
    # mirroring runs every tile 2^3 times; the count reported is the count run
    assert total == result.stats["tiles"] * 8 == network[-1][1] == result.stats["forward_calls"]
    assert [e[1] for e in network] == list(range(total + 1))
    text = stream.getvalue()
    assert f"{total}/{total}" in text and "<" in text  # the bar reached the end, with elapsed<remaining


@needs_data
def test_batch_keeps_per_scan_lines_without_stage_lines(installed_model, tmp_path):
    r = run_cli("-i", T2_FAKE_LESION, T2_FAKE_LESION.with_name("t2.nii.gz"), "-o", f"{tmp_path}/", "-threads", "2",
                env=_env(installed_model))
    assert r.returncode == 0, r.stderr
    assert "preprocessing" not in r.stderr and "tile passes" not in r.stderr
    assert len(re.findall(r"^\[\d/2\] ", r.stdout, flags=re.M)) == 2
