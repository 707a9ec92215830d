"""sct_analyze_lesion 7.3's options and the columns SCT lacks, against hand-computed values (no SCT needed):
-f (atlas sheets), -perslice with -f, -levels, -nli-slice, side shares, -soft-threshold, the xlsx."""
from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from conftest import DATA
from sct_task_sciseg.analysis import analyze_lesion_files, analyze_lesions, write_analysis
from sct_task_sciseg.analysis.analyze import Options
from sct_task_sciseg.analysis.atlas import load_template
from sct_task_sciseg.analysis.grid import Grid
from sct_task_sciseg.analysis.phantoms import Ellipsoid, atlas_phantom, standard, to_image
from sct_task_sciseg.errors import InputError

T2 = DATA / "t2"


def _atlas_analysis(tmp_path, perslice=False):
    ph = atlas_phantom(tmp_path / "label")
    grid = Grid.of(ph["lesion"].shape, ph["lesion"].affine, ph["lesion"].header.get_zooms())
    tmpl = load_template(ph["folder"], ph["lesion"], grid)
    return analyze_lesions(ph["lesion"], ph["cord"], options=Options(template=tmpl, atlas_per_slice=perslice))


def test_atlas_sheets_by_hand(tmp_path):
    a = _atlas_analysis(tmp_path)
    cols, dist = a.sheets["lesion#1_distribution"]
    assert cols == ["row", "PAM50_00", "PAM50_01", "PAM50_30", "total % (all tracts)", "white matter",
                    "gray matter"]  # CSF (36) left out; "spinal cord" = every tract: dropped, as SCT
    by_row = {r["row"]: r for r in dist}
    assert list(by_row) == ["3.0", "4.0", "total % (all vert)"]  # float level image: SCT's str(4.0)
    # lesion-weighted volumes: level 3 → tract 0: 2; level 4 → tract 0: 1, tract 1: 0.5; total 3.5
    assert by_row["3.0"]["PAM50_00"] == pytest.approx(200 / 3.5, rel=1e-14)
    assert by_row["4.0"]["PAM50_00"] == pytest.approx(100 / 3.5, rel=1e-14)
    assert by_row["4.0"]["PAM50_01"] == pytest.approx(50 / 3.5, rel=1e-14)
    assert by_row["4.0"]["total % (all tracts)"] == pytest.approx(150 / 3.5, rel=1e-14)
    assert by_row["4.0"]["white matter"] == pytest.approx(150 / 3.5, rel=1e-14)
    total = by_row["total % (all vert)"]
    assert total["total % (all tracts)"] == pytest.approx(100.0, rel=1e-14) and total["PAM50_30"] == 0
    cols, roi = a.sheets["ROI_occupied_by_lesion"]
    assert cols == ["row", "PAM50_00", "PAM50_01", "PAM50_30", "white matter", "gray matter"]
    by_row = {r["row"]: r for r in roi}
    # tract volumes per level: tract 0: 24, tract 1: 12, tract 30: 6; whole image 48, 24, 12
    assert by_row["3.0"]["PAM50_00"] == pytest.approx(200 / 24) and by_row["3.0"]["PAM50_01"] == 0
    assert by_row["4.0"]["PAM50_00"] == pytest.approx(100 / 24) and by_row["4.0"]["PAM50_01"] == pytest.approx(50 / 12)
    assert by_row["total % (all vert)"]["PAM50_00"] == pytest.approx(6.25)
    assert by_row["total % (all vert)"]["white matter"] == pytest.approx(350 / 72)
    assert by_row["total % (all vert)"]["gray matter"] == 0
    row = a.rows[0]
    # side from the cord centre (x = 3.5): three voxels at x = 4 (left), one at x = 3 (right)
    assert (row["left_share [%]"], row["right_share [%]"]) == (75.0, 25.0)
    # tracts named left: tract 0 (2 + 1) and 30 (0); right: tract 1 (0.5), of 3.5
    assert row["tracts_left [%]"] == pytest.approx(300 / 3.5) and row["tracts_right [%]"] == pytest.approx(50 / 3.5)
    assert (row["level_rostral"], row["level_caudal"], row["levels_spanned"]) == (3, 4, 2)
    assert row["level_largest_damage"] == 3 and row["level_type"] == "vertebral"  # 2/16 on z = 2 and 3: first


def test_atlas_sheets_per_slice(tmp_path):
    a = _atlas_analysis(tmp_path, perslice=True)
    cols, dist = a.sheets["lesion#1_distribution"]
    assert cols[:2] == ["row", "vert_level"]
    assert [(r["row"], r["vert_level"]) for r in dist] == [("0", 3), ("1", 3), ("2", 3), ("3", 4), ("4", 4),
                                                          ("5", 4), ("total % (all slice)", 21.0)]
    # SCT's total row sums every numeric column, the levels too (3 + 3 + 3 + 4 + 4 + 4)
    assert dist[2]["PAM50_00"] == pytest.approx(200 / 3.5) and dist[1]["PAM50_00"] == 0
    roi = {r["row"]: r for r in a.sheets["ROI_occupied_by_lesion"][1]}
    assert roi["2"]["PAM50_00"] == pytest.approx(25.0)  # 2 of the 8 on slice 2
    assert roi["0"]["white matter"] is None and roi["total % (all slice)"]["vert_level"] == ""


def test_template_folder_errors_are_one_line(tmp_path):
    ph = atlas_phantom(tmp_path / "label")
    for p in ("lesion", "cord"):
        nib.save(ph[p], tmp_path / f"{p}.nii.gz")
    (ph["folder"] / "template" / "PAM50_levels.nii.gz").unlink()
    with pytest.raises(InputError, match="PAM50_levels.nii.gz"):
        analyze_lesion_files(tmp_path / "lesion.nii.gz", tmp_path / "cord.nii.gz", template=ph["folder"])
    with pytest.raises(InputError, match="nope: not a folder"):
        analyze_lesion_files(tmp_path / "lesion.nii.gz", tmp_path / "cord.nii.gz", template=tmp_path / "nope")


def _nli_phantom():
    ph = standard()
    return ph, to_image(np.zeros(ph.shape, bool), ph.affine()), to_image(ph.cord(), ph.affine())


def test_nli_slice_without_lesion_is_the_cord_diameter():
    ph, empty, cord_img = _nli_phantom()
    cord = ph.cord()
    a = analyze_lesions(empty, cord_img, options=Options(nli_slice=17))
    x = np.nonzero(cord[:, :, 17])[0].mean()  # straight cylinder: the centre is the voxel column 20
    assert x == 20.0
    diameter = np.count_nonzero(cord[20, :, 17]) * 0.5
    row = a.rows[0]
    assert row["label"] == 0 and row["interpolated_midsagittal_slice"] == 20.0
    assert row["interpolated_total_bridge_width [mm]"] == diameter == 8.0
    assert row["interpolated_dorsal_bridge_width [mm]"] == row["interpolated_ventral_bridge_width [mm]"] == 4.0
    assert row["bridges_from"] == "nli_cord_ap_diameter" and row.get("dorsal_bridge_ratio [%]") is None


def test_nli_slice_places_the_midsagittal_slice_and_is_checked():
    ph = standard()
    ph.cord_centre = (10.25, ph.cord_centre[1])  # cord centre between voxel columns
    lesion_img, cord_img = ph.images()
    cord = ph.cord()
    a = analyze_lesions(lesion_img, cord_img, options=Options(nli_slice=5))
    assert a.rows[0]["interpolated_midsagittal_slice"] == pytest.approx(np.nonzero(cord[:, :, 5])[0].mean(), abs=1e-12)
    with pytest.raises(InputError, match="out of range for the S-I dimension"):
        analyze_lesions(lesion_img, cord_img, options=Options(nli_slice=ph.shape[2]))
    with pytest.raises(InputError, match="needs the cord mask"):
        analyze_lesions(lesion_img, None, options=Options(nli_slice=3))
    gap = cord.copy()
    gap[:, :, 5] = False
    with pytest.raises(InputError, match="no spinal cord at the NLI slice 5"):
        analyze_lesions(lesion_img, to_image(gap, ph.affine()), options=Options(nli_slice=5))


def test_soft_threshold_and_the_binary_check():
    ph = standard()
    core = ph.lesion()
    halo = standard()
    halo.lesions = [Ellipsoid(e.centre, tuple(s + 1.0 for s in e.semi_axes)) for e in ph.lesions]
    prob = np.where(core, 0.75, np.where(halo.lesion(), 0.25, 0.0))
    img = nib.Nifti1Image(prob.astype(np.float32), ph.affine())
    cord_img = to_image(ph.cord(), ph.affine())
    with pytest.raises(InputError, match=r"values in \[0, 0.75\] with 3 distinct levels: a probability map\? "
                                         "threshold it first"):
        analyze_lesions(img, cord_img)
    soft = analyze_lesions(img, cord_img, options=Options(soft_threshold=0.5))
    hard = analyze_lesions(to_image(core, ph.affine()), cord_img)
    voxel = 0.5 * 0.5 * 1.0
    assert soft.rows[0]["volume [mm3]"] == hard.rows[0]["volume [mm3]"] == core.sum() * voxel
    assert soft.rows[0]["soft_volume [mm3]"] == pytest.approx(0.75 * core.sum() * voxel)
    inside = ph.cord()
    expected = (0.75 * (core & inside).sum() + 0.25 * (halo.lesion() & ~core & inside).sum()) * voxel
    assert soft.summary["soft_volume [mm3]"] == pytest.approx(expected)
    with pytest.raises(InputError, match=r"must be in \(0, 1\]"):
        analyze_lesions(img, cord_img, options=Options(soft_threshold=1.5))


@pytest.mark.parametrize("values, message", [
    (np.array([0, 1, 2]), r"integer values \{0, 1, 2\} \(3 distinct\): a label map"),
    (np.array([0.0, 1.0, np.nan]), "1 NaN voxels"),
    (np.array([0.0, np.inf, 1.0]), "1 infinite voxels"),
    (np.array([0.0, 1.5, 3.0]), r"non-integer values in \[0, 3\]"),
])
def test_non_binary_lesion_masks_are_refused(values, message):
    ph = standard()
    data = ph.lesion().astype(np.float32 if values.dtype.kind == "f" else np.int16)
    xs = np.argwhere(data)[: len(values)]
    for (x, y, z), v in zip(xs, values):
        data[x, y, z] = v
    with pytest.raises(InputError, match=message):
        analyze_lesions(nib.Nifti1Image(data, ph.affine()), to_image(ph.cord(), ph.affine()))


def test_label_map_cord_is_refused():
    ph = standard()
    cord = ph.cord().astype(np.uint8) * 3
    with pytest.raises(InputError, match=r"cord mask is not binary: integer values \{0, 3\}"):
        analyze_lesions(to_image(ph.lesion(), ph.affine()), nib.Nifti1Image(cord, ph.affine()))


@pytest.mark.skipif(not (T2 / "t2_seg-manual_labeled.nii.gz").is_file(), reason="shared test data missing")
def test_levels_from_a_labelled_cord(tmp_path):
    labelled = nib.load(T2 / "t2_seg-manual_labeled.nii.gz")
    cord_img = nib.load(T2 / "t2_seg-manual.nii.gz")
    lv = np.asanyarray(labelled.dataobj)
    cord = np.asanyarray(cord_img.dataobj) > 0
    # a lesion = the cord on the axial slices (axis 1: the file is PSR) labelled only 3 or only 4
    keep = np.zeros(lv.shape, bool)
    for j in range(lv.shape[1]):
        vals = set(np.unique(lv[:, j, :][lv[:, j, :] > 0]).tolist())
        keep[:, j, :] = vals in ({3.0}, {4.0})
    lesion = cord & keep
    nib.save(nib.Nifti1Image(lesion.astype(np.uint8), cord_img.affine, cord_img.header), tmp_path / "les.nii.gz")
    nib.save(nib.Nifti1Image(cord.astype(np.uint8), cord_img.affine, cord_img.header), tmp_path / "cord.nii.gz")
    a = analyze_lesion_files(tmp_path / "les.nii.gz", tmp_path / "cord.nii.gz",
                             levels=T2 / "t2_seg-manual_labeled.nii.gz")
    big = max(a.rows, key=lambda r: r["volume [mm3]"])
    assert (big["level_rostral"], big["level_caudal"], big["levels_spanned"]) == (3, 4, 2)
    assert big["level_type"] == "vertebral" and big["level_largest_damage"] in (3, 4)
    spinal = tmp_path / "t2_spinal_levels.nii.gz"
    shutil.copy(T2 / "t2_seg-manual_labeled.nii.gz", spinal)
    a = analyze_lesion_files(tmp_path / "les.nii.gz", tmp_path / "cord.nii.gz", levels=spinal)
    assert a.rows[0]["level_type"] == "spinal" and a.summary["level_type"] == "spinal"


def test_xlsx_has_sct_sheets_and_columns(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    a = _atlas_analysis(tmp_path)
    paths = write_analysis(a, tmp_path / "out" / "les", xlsx=True) if (tmp_path / "out").mkdir() is None else None
    book = pd.read_excel(paths["xlsx"], sheet_name=None)
    assert list(book) == ["measures", "lesion#1_distribution", "ROI_occupied_by_lesion"]
    m = book["measures"]
    assert list(m.columns)[:6] == ["label", "volume [mm3]", "length [mm]", "width [mm]",
                                   "max_equivalent_diameter [mm]", "max_axial_damage_ratio []"]
    assert "note" not in m.columns and m.loc[0, "volume [mm3]"] == 4.0
    dist = book["lesion#1_distribution"]
    assert list(dist["row"].astype(str)) == ["3.0", "4.0", "total % (all vert)"]
    assert dist.loc[0, "PAM50_00"] == pytest.approx(200 / 3.5)
    csv = pd.read_csv(paths["roi"])
    assert csv.loc[2, "PAM50_00"] == pytest.approx(6.25) and csv["white matter"].dtype.kind == "f"


def test_qc_lesion_column_shows_level_and_side(tmp_path):
    from sct_task_sciseg.qc.entry import analysis_numbers
    from sct_task_sciseg.qc.lesion_columns import cells

    a = _atlas_analysis(tmp_path)
    entry = {"analysis": analysis_numbers(a), "file": "x.nii.gz"}
    html = cells(entry)[0]
    assert "<div class=small>vert 3–4 · L 75%</div>" in html and "lesion 1: vert 3–4 · L 75%" in html


def test_xlsx_same_with_either_writer(tmp_path, monkeypatch):
    """openpyxl (the ``xlsx`` extra) and xlsxwriter (in SCT's environment) write the same sheets."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    pytest.importorskip("xlsxwriter")
    from sct_task_sciseg.analysis import result_files

    a = _atlas_analysis(tmp_path)
    books = {}
    for lib in ("openpyxl", "xlsxwriter"):
        monkeypatch.setattr(result_files, "xlsx_writer", lambda lib=lib: lib)
        (tmp_path / lib).mkdir()
        books[lib] = pd.read_excel(write_analysis(a, tmp_path / lib / "les", xlsx=True)["xlsx"], sheet_name=None)
    assert list(books["openpyxl"]) == list(books["xlsxwriter"])
    for name, frame in books["openpyxl"].items():
        pd.testing.assert_frame_equal(frame, books["xlsxwriter"][name])


@pytest.mark.skipif(not (T2 / "t2_fake_lesion.nii.gz").is_file(), reason="shared test data missing")
def test_the_models_own_soft_map_with_a_threshold(segmenter):
    """This package's probability map (sciseg -soft 1) is refused as a mask and measured with -soft-threshold:
    the thresholded rows are those of the mask soft >= T, plus the sum of probabilities."""
    from sct_task_sciseg.pipeline import Segmenter

    result = Segmenter.from_config(segmenter.config.with_(extra_images=("soft",))).segment(T2 / "t2_fake_lesion.nii.gz")
    soft, cord = result.extra_images["lesion_soft"], result.masks["sc"]
    with pytest.raises(InputError, match="a probability map\\? threshold it first"):
        analyze_lesions(soft, cord)
    p = np.asanyarray(soft.dataobj)
    hard = nib.Nifti1Image((p >= 0.5).astype(np.uint8), soft.affine, soft.header)
    a = analyze_lesions(soft, cord, options=Options(soft_threshold=0.5))
    b = analyze_lesions(hard, cord)
    assert a.lesion_count == b.lesion_count >= 1
    for ra, rb in zip(a.rows, b.rows):
        same = [k for k in b.columns if k != "soft_volume [mm3]"]
        assert {k: ra.get(k) for k in same} == {k: rb.get(k) for k in same}
    voxel = float(np.prod(soft.header.get_zooms()[:3]))
    inside = np.asanyarray(cord.dataobj) > 0
    assert a.summary["soft_volume [mm3]"] == pytest.approx(float(p[inside].astype(np.float64).sum()) * voxel)
    assert sum(r["soft_volume [mm3]"] for r in a.rows) <= a.summary["soft_volume [mm3]"]
