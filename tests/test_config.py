"""A segmenter is described by a small picklable value; another process (or thread) gets the same masks."""
from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
import threading

import numpy as np

from conftest import EMBEDDED_ZIP, T2_FAKE_LESION, needs_data
from sct_task_sciseg.io.hashing import sha256_file
from sct_task_sciseg.pipeline import PostProcessing, Segmenter, SegmenterConfig
from sct_task_sciseg.tasks import SCISEG


def test_config_is_a_small_picklable_value():
    cfg = SegmenterConfig(task="seg_sc_lesion_t2w_sci@phantom", threads=2, folds=[1],
                          postprocessing=PostProcessing(thr=0.4, remove_small=["lesion:5mm3"]))
    blob = pickle.dumps(cfg)
    assert len(blob) < 2000
    back = pickle.loads(blob)
    assert back == cfg and hash(back) == hash(cfg)
    assert back.folds == (1,) and back.postprocessing.remove_small == ("lesion:5mm3",)
    assert back.resolved_task() == (SCISEG, "phantom")


@needs_data
def test_another_process_rebuilds_the_same_segmenter(segmenter, tmp_path):
    reference = segmenter.segment(T2_FAKE_LESION).labels
    config_file = tmp_path / "config.pickle"
    config_file.write_bytes(pickle.dumps(segmenter.config))
    code = ("import pickle, sys, hashlib, numpy as np\n"
            "from sct_task_sciseg.pipeline import Segmenter\n"
            f"cfg = pickle.loads(open({str(config_file)!r}, 'rb').read())\n"
            f"labels = Segmenter.from_config(cfg).segment({str(T2_FAKE_LESION)!r}).labels\n"
            "print(hashlib.sha256(np.ascontiguousarray(labels, dtype=np.uint8).tobytes()).hexdigest())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = hashlib.sha256(np.ascontiguousarray(reference, dtype=np.uint8).tobytes()).hexdigest()
    assert out.stdout.strip() == expected


@needs_data
def test_one_segmenter_shared_by_threads_gives_the_same_masks(segmenter):
    reference = segmenter.segment(T2_FAKE_LESION).labels
    shared = Segmenter.from_config(segmenter.config)
    results, errors = [None] * 3, []

    def work(i):
        try:
            results[i] = shared.segment(T2_FAKE_LESION).labels
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(np.array_equal(r, reference) for r in results)


def test_phantom_release_pin_matches_the_shipped_file_and_its_manifest():
    release = SCISEG.demo_release
    manifest = json.loads(EMBEDDED_ZIP.with_suffix(".json").read_text())
    assert release.sha256 == manifest["sha256"] == sha256_file(EMBEDDED_ZIP)
    assert release.size == manifest["size"] == EMBEDDED_ZIP.stat().st_size
    assert manifest["tag"] == release.tag and manifest["asset"] == release.asset == EMBEDDED_ZIP.name
