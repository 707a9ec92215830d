"""Analysis outputs that stay numbers and stay whole: CSV cells parsed by pandas (lesions off the midsagittal
slices included), spreadsheet formulas neutralised, 15-digit floats, refusals that write nothing."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sct_task_sciseg.analysis import analyze_lesions, write_analysis
from sct_task_sciseg.analysis.phantoms import Ellipsoid, atlas_phantom, standard, to_image
from sct_task_sciseg.analysis.table import OWN_COLUMNS, SCT_COLUMNS, cell
from sct_task_sciseg.batch.cohort import write_cohort

pd = pytest.importorskip("pandas")
TEXT_COLUMNS = {"bridges_from", "note", "level_type", "participant", "session", "file", "row"}


def cli(*args, cwd=None):
    exe = Path(sys.executable).with_name("sciseg_analyze_lesion")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def _off_midsagittal():
    ph = standard()
    ph.lesions = [Ellipsoid((12.9, 14.13, 20.31), (0.9, 1.0, 4.0)), Ellipsoid((10.0, 13.63, 10.31), (1.5, 2.0, 3.0))]
    return ph


def _check_numeric(path: Path) -> None:
    frame = pd.read_csv(path)
    for col in frame.columns:
        if col in TEXT_COLUMNS or frame[col].isna().all():
            continue
        assert frame[col].dtype.kind in "if", (path.name, col, frame[col].tolist()[:3])


def test_every_csv_is_numbers_with_lesions_off_the_midsagittal_slices(tmp_path):
    """Regression: bridge cells held ``np.float64(0.483)`` (repr of a NumPy float) when a lesion missed the
    midsagittal slices; pandas then read those columns as text, per scan and in the cohort table."""
    ph = _off_midsagittal()
    a = analyze_lesions(*ph.images(), perslice=True)
    assert {r["bridges_from"] for r in a.rows} == {"midsagittal", "cord_ap_diameter"}
    paths = write_analysis(a, tmp_path / "scan")
    b = analyze_lesions(atlas_phantom(tmp_path / "label")["lesion"], atlas_phantom(tmp_path / "label")["cord"])
    write_cohort([(tmp_path / "sub-01_T2w.nii.gz", a.rows, a.summary),
                  (tmp_path / "sub-02_T2w.nii.gz", b.rows, b.summary)], tmp_path)
    text = paths["csv"].read_text() + (tmp_path / "lesion_analysis_cohort.csv").read_text()
    assert "np.float" not in text and "np.int" not in text
    for p in list(tmp_path.glob("*.csv")):
        _check_numeric(p)
    cohort = pd.read_csv(tmp_path / "lesion_analysis_cohort.csv")
    per_scan = pd.read_csv(paths["csv"])
    assert list(cohort.loc[cohort.participant == "sub-01", "interpolated_total_bridge_width [mm]"].dropna()) == \
        list(per_scan["interpolated_total_bridge_width [mm]"])


def test_cli_csvs_parse_as_numbers_with_every_option(tmp_path):
    ph = atlas_phantom(tmp_path / "label")
    for k in ("lesion", "cord"):
        nib.save(ph[k], tmp_path / f"{k}.nii.gz")
    r = cli("-m", tmp_path / "lesion.nii.gz", "-s", tmp_path / "cord.nii.gz", "-f", ph["folder"], "-perslice", "1",
            "-ofolder", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    csvs = sorted((tmp_path / "out").glob("*.csv"))
    assert [p.name for p in csvs] == ["lesion_ROI_occupied_by_lesion.csv", "lesion_analysis.csv",
                                      "lesion_lesion_distribution.csv"]
    for p in csvs:
        _check_numeric(p)


def test_cells_numbers_precision_and_formulas():
    assert cell(76.80010560000001) == "76.8001056" and cell(150 * 0.8 * 0.8 * 0.8) == "76.8"
    assert cell(np.float64(0.483)) == "0.483" and cell(np.int64(7)) == "7" and cell(np.bool_(True)) == "1"
    assert cell(10.393295442771858) == "10.3932954427719"  # 15 significant digits
    assert cell(float("nan")) == "" and cell(None) == "" and cell(-2.5) == "-2.5"
    for text in ("=HYPERLINK(\"http://x\")", "+1", "-cmd", "@SUM(A1)"):
        assert cell(text) == "'" + text
    assert cell("sub-01_T2w.nii.gz") == "sub-01_T2w.nii.gz"


def test_cohort_neutralises_formula_file_names(tmp_path):
    a = analyze_lesions(*standard().images())
    write_cohort([(tmp_path / "=1+1.nii.gz", a.rows, a.summary)], tmp_path)
    frame = pd.read_csv(tmp_path / "lesion_analysis_cohort.csv")
    assert set(frame["file"]) == {"'=1+1.nii.gz"}


def _masks(tmp_path):
    ph = standard()
    lesion, cord = ph.images()
    nib.save(lesion, tmp_path / "les.nii.gz")
    nib.save(cord, tmp_path / "cord.nii.gz")
    return ph


def test_image_with_inf_is_one_line_and_leaves_the_old_analysis(tmp_path):
    """Regression: an image holding Inf ended in a traceback with a new CSV beside the old JSON."""
    ph = _masks(tmp_path)
    img = np.ones(ph.shape, np.float32) * 100
    nib.save(nib.Nifti1Image(img, ph.affine()), tmp_path / "t2.nii.gz")
    out = tmp_path / "out"
    assert cli("-m", tmp_path / "les.nii.gz", "-s", tmp_path / "cord.nii.gz", "-i", tmp_path / "t2.nii.gz",
               "-ofolder", out).returncode == 0
    before = {p.name: sha(p) for p in out.iterdir()}
    img[ph.lesion()] = np.inf
    nib.save(nib.Nifti1Image(img, ph.affine()), tmp_path / "t2.nii.gz")
    r = cli("-m", tmp_path / "les.nii.gz", "-s", tmp_path / "cord.nii.gz", "-i", tmp_path / "t2.nii.gz",
            "-ofolder", out)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "t2.nii.gz" in r.stderr and "infinite voxels" in r.stderr
    assert {p.name: sha(p) for p in out.iterdir()} == before
    img[ph.lesion()] = 3e38  # float32: the float32 mean overflows, the float64 one does not
    nib.save(nib.Nifti1Image(img, ph.affine()), tmp_path / "t2.nii.gz")
    r = cli("-m", tmp_path / "les.nii.gz", "-s", tmp_path / "cord.nii.gz", "-i", tmp_path / "t2.nii.gz",
            "-ofolder", out)
    assert r.returncode == 0, r.stderr
    rows = pd.read_csv(out / "les_analysis.csv")
    assert rows.loc[0, "mean_t2"] == pytest.approx(float(np.float32(3e38)), rel=1e-6)


def test_output_over_an_input_is_refused_before_writing(tmp_path):
    """Regression: ``-m a.nii.gz -s a_label.nii.gz`` overwrote the cord mask with the lesion-id image."""
    ph = standard()
    lesion, cord = ph.images()
    nib.save(lesion, tmp_path / "a.nii.gz")
    nib.save(cord, tmp_path / "a_label.nii.gz")
    before = {p.name: sha(p) for p in tmp_path.iterdir()}
    r = cli("-m", "a.nii.gz", "-s", "a_label.nii.gz", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "a_label.nii.gz" in r.stderr and "over this input" in r.stderr
    assert {p.name: sha(p) for p in tmp_path.iterdir()} == before
    from sct_task_sciseg.analysis import analyze_lesion_files
    from sct_task_sciseg.errors import OutputError

    a = analyze_lesion_files(tmp_path / "a.nii.gz", tmp_path / "a_label.nii.gz")
    with pytest.raises(OutputError, match="is the analysis's cord input"):
        write_analysis(a, tmp_path / "a")
    assert {p.name: sha(p) for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("kind", ["probability", "label", "nan"])
def test_cli_refuses_non_binary_masks_in_one_line(tmp_path, kind):
    """Regression: a probability map as the lesion mask made the whole cord a lesion (exit 0); NaN voxels
    counted as lesion."""
    ph = _masks(tmp_path)
    data = ph.lesion().astype(np.float32)
    if kind == "probability":
        data = np.where(ph.cord(), 0.2, 0.0).astype(np.float32) + 0.7 * data
    elif kind == "label":
        data = data * 2
    else:
        data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, ph.affine()), tmp_path / "bad.nii.gz")
    r = cli("-m", tmp_path / "bad.nii.gz", "-s", tmp_path / "cord.nii.gz", "-ofolder", tmp_path / "out")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "bad.nii.gz" in r.stderr, r.stderr
    expected = {"probability": "a probability map? threshold it first", "label": "integer values in [0, 2]",
                "nan": "1 NaN voxels"}[kind]
    assert expected in r.stderr and "not binary" in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    if kind == "probability":
        r = cli("-m", tmp_path / "bad.nii.gz", "-s", tmp_path / "cord.nii.gz", "-ofolder", tmp_path / "out",
                "-soft-threshold", "0.5")
        assert r.returncode == 0, r.stderr
        rows = pd.read_csv(tmp_path / "out" / "bad_analysis.csv")
        assert rows.loc[0, "voxels"] == ph.lesion().sum()
        assert rows.loc[0, "soft_volume [mm3]"] == pytest.approx(0.9 * ph.lesion().sum() * 0.25, rel=1e-6)


def test_batch_analysis_refuses_a_soft_map_as_mask():
    from sct_task_sciseg.analysis import analyze_masks
    from sct_task_sciseg.errors import InputError
    from sct_task_sciseg.tasks import get_task

    scheme = get_task("seg_sc_lesion_t2w_sci").labels
    ph = standard()
    soft = nib.Nifti1Image(np.where(ph.cord(), 0.6, 0.0).astype(np.float32), ph.affine())
    with pytest.raises(InputError, match="lesion mask is not binary: values in"):
        analyze_masks({scheme.finding: soft, scheme.parent: to_image(ph.cord(), ph.affine())}, scheme)


def test_readme_documents_every_column():
    """The README's column table is generated from the code (``analysis.table.markdown``)."""
    from sct_task_sciseg.analysis.table import markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert markdown() in readme
    for name in list(SCT_COLUMNS) + list(OWN_COLUMNS):
        assert f"`{name}`" in markdown()
