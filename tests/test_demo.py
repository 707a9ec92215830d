"""`sciseg -demo`: the whole main job offline with the embedded phantom-trained model."""
from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli
from sct_task_sciseg.demo.phantom import dice


@pytest.mark.parametrize("seed", [7, 2024])
def test_demo_offline_segments_a_fresh_phantom(tmp_path, seed):
    env = {"SCISEG_MODELS_DIR": str(tmp_path / "models"),
           "SCISEG_RELEASE_URL": "http://127.0.0.1:9"}  # nothing listens there: the demo must not need it
    r = run_cli("-demo", "-seed", seed, "-o", tmp_path / "demo", "-threads", "2", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"Dice cord ([0-9.]+), lesion ([0-9.]+); lesion found: (yes|no)", r.stdout)
    assert m, r.stdout
    assert float(m.group(1)) >= 0.9 and m.group(3) == "yes"
    # the printed Dice is the Dice of the written files against the written truth
    stem = tmp_path / "demo" / f"phantom_seed{seed}"
    truth = np.asanyarray(nib.load(f"{stem}_truth.nii.gz").dataobj)
    sc = np.asanyarray(nib.load(f"{stem}_T2w_sc_seg.nii.gz").dataobj)
    les = np.asanyarray(nib.load(f"{stem}_T2w_lesion_seg.nii.gz").dataobj)
    assert abs(dice(sc, truth >= 1) - float(m.group(1))) < 1e-3
    assert abs(dice(les, truth == 2) - float(m.group(2))) < 1e-3
    marker = next((tmp_path / "models").rglob("sciseg_install.json"))
    assert marker.parent.name == "phantom-r20261124"
