"""A new kind of image beside the masks is two rows: its flag and file names (``io/outputs.IMAGE_KINDS``) and its
producer (``pipeline/extra_images.PRODUCERS``). Registered there only, a kind gets its flag, its files and
sidecars in the scan's one all-or-none write, the resume rule, and is never taken as an input."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
from scipy import ndimage

from conftest import T2_FAKE_LESION, needs_data
from sct_task_sciseg.batch.inputs import scan
from sct_task_sciseg.cli import main
from sct_task_sciseg.io.nifti import mask_image
from sct_task_sciseg.io.outputs import IMAGE_KINDS, ImageKind, is_package_output
from sct_task_sciseg.pipeline.extra_images import PRODUCERS, Producer
from sct_task_sciseg.tasks import SCISEG


def _rim(mask: np.ndarray) -> np.ndarray:
    return (mask > 0) & ~ndimage.binary_erosion(mask > 0)


RIM = Producer(needs_probabilities=False,
               images=lambda inf: {n: mask_image(_rim(m).astype(np.uint8), inf.image) for n, m in inf.masks.items()},
               sidecar=lambda output: {"Type": "rim", "Description": f"boundary voxels of: {output.name}"})


@needs_data
def test_a_kind_registered_in_the_two_tables_only_is_written_resumed_and_never_an_input(
        installed_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(IMAGE_KINDS, "rim", ImageKind("rim", "_rim", "rim", "also write each output's rim, {files}"))
    monkeypatch.setitem(PRODUCERS, "rim", RIM)
    monkeypatch.setenv("SCISEG_MODELS_DIR", str(installed_model.model_folder.parents[2]))
    out = tmp_path / "out"
    argv = ["-i", str(T2_FAKE_LESION), "-o", f"{out}/", "-rim", "1", "-threads", "2"]
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    stem = "t2_fake_lesion"
    assert names == sorted(f"{stem}{o.suffix}{extra}{ext}" for o in SCISEG.outputs
                           for extra in ("", "_rim") for ext in (".nii.gz", ".json"))
    for o in SCISEG.outputs:
        mask = np.asanyarray(nib.load(out / f"{stem}{o.suffix}.nii.gz").dataobj)
        rim = nib.load(out / f"{stem}{o.suffix}_rim.nii.gz")
        assert np.array_equal(np.asanyarray(rim.dataobj) == 1, _rim(mask))
        assert int(np.asanyarray(rim.dataobj).sum()) > 0 or o.name == "lesion"
        side = json.loads((out / f"{stem}{o.suffix}_rim.json").read_text())
        assert (side["Output"], side["Type"]) == (o.name, "rim")
    assert int((np.asanyarray(nib.load(out / f"{stem}_sc_seg_rim.nii.gz").dataobj)).sum()) > 500
    # the second run finds every file of the plan up to date, the rims included: nothing is segmented again
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    # a rim is named as this package's output: a folder holding them yields only the scan as an input
    assert is_package_output(out / f"{stem}_sc_seg_rim.nii.gz", [SCISEG])
    assert scan([str(out)], SCISEG) == ([], [])
