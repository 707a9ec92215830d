"""`sciseg -demo`: the whole main job offline with the embedded phantom-trained model."""
from __future__ import annotations

import re
from pathlib import Path

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


def test_demo_is_reproducible_and_leaves_the_current_folder_alone(tmp_path):
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), tmp.mkdir()
    env = {"SCISEG_MODELS_DIR": str(tmp_path / "models"), "SCISEG_RELEASE_URL": "http://127.0.0.1:9",
           "TMPDIR": str(tmp)}
    runs = [run_cli("-demo", "-threads", "2", env=env, cwd=cwd) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert list(cwd.iterdir()) == []  # nothing written where the command was typed
    folders = [re.search(r"demo folder: (\S+) \(seed 2024", r.stdout).group(1) for r in runs]
    assert folders[0] != folders[1] and all(Path(f).parent == tmp for f in folders)
    dice_lines = [re.search(r"Dice .*?;", r.stdout).group(0) for r in runs]
    assert dice_lines[0] == dice_lines[1]
    masks = [np.asanyarray(nib.load(str(next(Path(f).glob("*_sc_seg.nii.gz")))).dataobj) for f in folders]
    assert np.array_equal(masks[0], masks[1]) and masks[0].sum() > 0


def test_readme_python_example_runs_as_written_offline(tmp_path):
    import subprocess
    import sys
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("<!-- readme:python -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    env = dict(__import__("os").environ, SCISEG_MODELS_DIR=str(tmp_path / "models"),
               SCISEG_RELEASE_URL="http://127.0.0.1:9")
    out = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    counts = __import__("ast").literal_eval(out.stdout.strip().splitlines()[-1])  # a dict of voxel counts
    assert set(counts) == {"sc", "lesion"} and counts["sc"] > 1000 and 0 < counts["lesion"] < counts["sc"]
