"""A second task (:mod:`second_task`: labels 3 and 4, outputs "tissue" and "spot") runs end to end: install,
segmentation, post-processing, output naming, thresholds and QC read the task's label scheme, with no
SCIseg-specific code path. Its model is the phantom model with the labels of its dataset.json renamed, so the
masks must equal SCIseg's cord and lesion masks voxel for voxel."""
from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import EMBEDDED_ZIP, T2_FAKE_LESION, needs_data
from second_task import LABELS, OTHER
from sct_task_sciseg.batch import run_batch
from sct_task_sciseg.batch.inputs import Item, bids_skipped, scan
from sct_task_sciseg.batch.runner import Job, unusable_warning
from sct_task_sciseg.pipeline import PostProcessing, Segmenter
from sct_task_sciseg.qc.entry import write_qc
from sct_task_sciseg.qc.geometry import Roles
from sct_task_sciseg.tasks.sciseg import SCISEG
from sct_task_sciseg.weights import install


def relabelled_zip(dest: Path) -> Path:
    """The phantom release with dataset.json saying labels 3 (tissue) and 4 (spot) instead of 1 and 2."""
    with zipfile.ZipFile(EMBEDDED_ZIP) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("dataset.json"):
                dataset = json.loads(data)
                dataset["labels"] = LABELS
                dataset["regions_class_order"] = [3, 4]
                data = json.dumps(dataset, indent=2).encode()
            out.writestr(info, data)
    return dest


def test_bids_suffixes_come_from_the_contrasts():
    assert SCISEG.bids_suffixes == ("_T2w",) and OTHER.bids_suffixes == ("_T1w",)
    assert replace(OTHER, contrasts=("t2s", "t2star")).bids_suffixes == ("_T2starw",)
    assert replace(OTHER, contrasts=("psir",), anat_suffixes=("_PSIR",)).bids_suffixes == ("_PSIR",)
    with pytest.raises(ValueError, match="no BIDS suffix known for contrasts \\['psir'\\]"):
        replace(OTHER, contrasts=("psir",))


def test_bids_discovery_takes_the_task_contrast(tmp_path):
    ds = tmp_path / "ds"
    for sub, ses in (("sub-01", ""), ("sub-02", "ses-a")):
        anat = ds / sub / ses / "anat"
        anat.mkdir(parents=True)
        for kind in ("T1w", "T2w"):
            (anat / f"{sub}{'_' + ses if ses else ''}_{kind}.nii.gz").write_bytes(b"")
    (ds / "sub-01" / "anat" / "sub-01_T1w_tissue_seg.nii.gz").write_bytes(b"")  # an output of OTHER: never taken
    found = {t.name: [it.path.name for it in scan([str(ds)], t)[0]] for t in (SCISEG, OTHER)}
    assert found == {SCISEG.name: ["sub-01_T2w.nii.gz", "sub-02_ses-a_T2w.nii.gz"],
                     OTHER.name: ["sub-01_T1w.nii.gz", "sub-02_ses-a_T1w.nii.gz"]}
    # skipped: the other contrast's two scans (+ OTHER's mask for SCIseg, which is not one of its outputs)
    assert (bids_skipped(ds, SCISEG), bids_skipped(ds, OTHER)) == (3, 3)


def test_unusable_warning_names_the_task_contrast(tmp_path):
    job = Job(Item(tmp_path / "sub-01_T2w.nii.gz"), status="done", checks={"flags": ["empty-cord"]})
    assert "is this a T1w spinal-cord scan?" in unusable_warning(job, OTHER)
    assert "is this a T2w spinal-cord scan?" in unusable_warning(job, SCISEG)


@pytest.fixture(scope="module")
def other_segmenter(tmp_path_factory):
    root = tmp_path_factory.mktemp("other_task")
    zip_path = relabelled_zip(root / "tissue_t1.zip")
    install(OTHER, "t1", models_dir=root / "models", source=str(zip_path), quiet=True)
    return Segmenter(OTHER, "t1", models_dir=str(root / "models"), threads=2, quiet=True)


def test_the_task_scheme_differs_from_sciseg():
    assert OTHER.labels.base_label == 3 and SCISEG.labels.base_label == 1
    with pytest.raises(KeyError):
        OTHER.output("sc")


@needs_data
def test_other_label_map_gives_the_same_masks_under_its_own_names(other_segmenter, segmenter, tmp_path):
    theirs = other_segmenter.segment_file(T2_FAKE_LESION, tmp_path / "other.nii.gz")
    ours = segmenter.segment_file(T2_FAKE_LESION, tmp_path / "sciseg.nii.gz")
    assert sorted(theirs) == ["spot", "tissue"]
    assert theirs["tissue"].name == "other_tissue_seg.nii.gz" and theirs["spot"].name == "other_spot_seg.nii.gz"
    tissue = np.asanyarray(nib.load(theirs["tissue"]).dataobj)
    spot = np.asanyarray(nib.load(theirs["spot"]).dataobj)
    assert np.array_equal(tissue, np.asanyarray(nib.load(ours["sc"]).dataobj))
    assert np.array_equal(spot, np.asanyarray(nib.load(ours["lesion"]).dataobj))
    assert spot.sum() > 0 and tissue.sum() > spot.sum()
    sidecar = json.loads(theirs["tissue"].with_name("other_tissue_seg.json").read_text())
    assert sidecar["GeneratedBy"][0]["Task"] == OTHER.name


@needs_data
def test_post_processing_and_threshold_act_on_the_scheme(other_segmenter, segmenter):
    base = other_segmenter.segment(T2_FAKE_LESION)
    assert set(np.unique(base.labels)) == {0, 3, 4}
    # remove every spot: its voxels fall back to the parent's own label, 3, so the tissue mask is unchanged
    pp = PostProcessing(remove_small=("1000000vox",))
    cleaned = Segmenter.from_config(other_segmenter.config.with_(postprocessing=pp)).segment(T2_FAKE_LESION)
    assert cleaned.masks["spot"].get_fdata().sum() == 0
    assert np.array_equal(cleaned.masks["tissue"].get_fdata(), base.masks["tissue"].get_fdata())
    assert set(np.unique(cleaned.labels)) == {0, 3}
    # a custom threshold uses the model's regions_class_order (3, 4): the same label values as nnU-Net's 0.5
    at_half = Segmenter.from_config(other_segmenter.config.with_(postprocessing=PostProcessing(thr=0.5)))
    thresholded = at_half.segment(T2_FAKE_LESION).labels
    assert set(np.unique(thresholded)) <= {0, 3, 4}
    sciseg_half = Segmenter.from_config(segmenter.config.with_(postprocessing=PostProcessing(thr=0.5)))
    assert np.array_equal(thresholded == 4, sciseg_half.segment(T2_FAKE_LESION).labels == 2)


@needs_data
def test_qc_reads_the_scheme(other_segmenter, tmp_path):
    result = other_segmenter.segment(T2_FAKE_LESION)
    entry = write_qc(tmp_path / "qc", T2_FAKE_LESION, result.image, result.masks, model_tag="t1",
                     task_name=OTHER.name, roles=Roles.of(OTHER.labels))
    record = json.loads(Path(entry).read_text())
    # QC's records name roles (structure = "cord", finding = "lesion") and title them after the task's outputs
    assert record["titles"] == {"cord": "tissue", "lesion": "spot"}
    assert record["stats"]["cord_voxels"] == int(result.masks["tissue"].get_fdata().sum())
    assert record["stats"]["lesion_voxels"] == int(result.masks["spot"].get_fdata().sum()) > 0
    pictures = sorted(p.name for p in (tmp_path / "qc").rglob("*.png"))
    assert pictures and all("sagittal" in p or "axial" in p for p in pictures)


@needs_data
def test_bids_batch_with_qc_and_analysis_of_a_t1w_task(other_segmenter, segmenter, tmp_path):
    """A BIDS dataset through a batch of the T1w task with -analyze: its T1w scan only is segmented, the
    derivatives carry its output names, and the analysis counts its finding as SCIseg counts its lesions."""
    anat = tmp_path / "ds" / "sub-01" / "anat"
    anat.mkdir(parents=True)
    for kind in ("T1w", "T2w"):
        (anat / f"sub-01_{kind}.nii.gz").write_bytes(T2_FAKE_LESION.read_bytes())
    items = scan([str(tmp_path / "ds")], OTHER)[0]
    jobs = run_batch(other_segmenter, items, str(tmp_path / "deriv") + "/", analyze=True, verbose=0)
    assert [(j.path.name, j.status) for j in jobs] == [("sub-01_T1w.nii.gz", "done")]
    assert sorted(p.name for p in jobs[0].outputs.values()) == [
        "sub-01_T1w_label-spot_seg.nii.gz", "sub-01_T1w_label-tissue_seg.nii.gz"]
    sciseg = run_batch(segmenter, scan([str(tmp_path / "ds")], SCISEG)[0], str(tmp_path / "sci") + "/",
                       analyze=True, verbose=0)
    assert [j.path.name for j in sciseg] == ["sub-01_T2w.nii.gz"]
    ours, theirs = jobs[0].analysis.summary, sciseg[0].analysis.summary
    assert ours["lesion_count"] == theirs["lesion_count"] > 0
    assert ours == theirs
