"""Lesion morphometrics: analytic phantoms with known answers, the crash cases of SCT 7.3, orientation
invariance, the written files, and parity with SCT 7.3's own sct_analyze_lesion (when its environment exists).

Tolerances come from the voxel size h and are stated per check: a voxel is inside when its centre is, so an
extent along one axis is off by at most one voxel (each end by half), a bridge (difference of two edges) by one
voxel, and a pixel-counted area by at most its perimeter × h / 2.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import sct_python, sct_pythons
from sct_task_sciseg.analysis import analyze_label_map, analyze_lesions, write_analysis
from sct_task_sciseg.analysis.centerline import cord_angles
from sct_task_sciseg.analysis.phantoms import Ellipsoid, all_orientations, standard, to_image
from sct_task_sciseg.analysis.table import SCT_COLUMNS
from sct_task_sciseg.tasks import SCISEG

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sct_testing_data" / "t2"


def _ellipse_perimeter(a: float, b: float) -> float:
    h = ((a - b) / (a + b)) ** 2
    return np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)))  # Ramanujan


def _run(ph, **kw):
    lesion, cord = ph.images()
    return analyze_lesions(lesion, cord, **kw)


def test_straight_cord_ellipsoid_matches_closed_form():
    ph = standard((0.25, 0.25, 0.5))
    px, py, pz = ph.zooms
    a, b, c = ph.lesions[0].semi_axes
    r = _run(ph).rows[0]
    exp = ph.expected()
    voxels = int((ph.lesion() & ph.cord()).sum())
    assert r["voxels"] == voxels and r["volume [mm3]"] == pytest.approx(voxels * px * py * pz, rel=1e-12)
    # the lattice count of a convex body misses at most the voxels its surface cuts: |dV| <= area x h_max / 2
    area = 4 * np.pi * ((((a * b) ** 1.6 + (a * c) ** 1.6 + (b * c) ** 1.6) / 3) ** (1 / 1.6))
    assert abs(r["volume [mm3]"] - exp["volume [mm3]"]) <= area * pz / 2
    assert abs(r["length [mm]"] - exp["length [mm]"]) <= pz  # one slice more or less
    assert abs(r["width [mm]"] - exp["width [mm]"]) <= py
    for k in ("dorsal", "ventral"):
        assert abs(r[f"interpolated_{k}_bridge_width [mm]"] - exp[f"interpolated_{k}_bridge_width [mm]"]) <= py
    assert r["interpolated_dorsal_bridge_width [mm]"] == pytest.approx(1.5, abs=py)  # 4 - 2 - 0.5 mm
    assert r["interpolated_ventral_bridge_width [mm]"] == pytest.approx(2.5, abs=py)
    # each pixel-counted area is off by at most perimeter x h / 2
    rel = (_ellipse_perimeter(a, b) * px / 2) / (np.pi * a * b) + (2 * np.pi * 4.0 * px / 2) / (np.pi * 16.0)
    assert abs(r["max_axial_damage_ratio []"] - exp["max_axial_damage_ratio []"]) <= rel * exp[
        "max_axial_damage_ratio []"]
    assert abs(r["max_equivalent_diameter [mm]"] - 2 * np.sqrt(a * b)) <= px
    assert r["interpolated_midsagittal_slice"] == 40.0  # the cord axis, x = 10 mm / 0.25 mm: exact
    assert r["length_interpolated_midsagittal_slice [mm]"] == pytest.approx(2 * c, abs=pz)
    assert r["width_interpolated_midsagittal_slice [mm]"] == pytest.approx(2 * b, abs=py)
    assert r["total_bridge_width_single_slice [mm]"] == pytest.approx(4.0, abs=2 * py)
    assert r["bridges_from"] == "midsagittal" and r["note"] == "" and r["touches_image_edge"] == 0
    assert r["dorsal_bridge_ratio [%]"] + r["ventral_bridge_ratio [%]"] == pytest.approx(100.0)


def test_tilted_cord_angle_correction():
    ph = standard((0.25, 0.25, 0.5), tilt_deg=20.0)
    px, py, pz = ph.zooms
    angles = cord_angles(ph.cord(), ph.zooms)
    zs = np.nonzero(ph.lesion().any(axis=(0, 1)))[0]
    # the fitted centreline of a straight tilted cylinder: within 0.5 degree on the lesion's slices
    assert np.allclose(np.rad2deg(angles.sagittal[zs]), 20.0, atol=0.5)
    assert np.allclose(angles.angle_3d[zs], angles.sagittal[zs], atol=1e-3)  # no R-L tilt
    r = _run(ph).rows[0]
    exp = ph.expected()
    cos = np.cos(np.deg2rad(20.0))
    assert abs(r["length [mm]"] - exp["length [mm]"]) <= pz / cos
    assert abs(r["width [mm]"] - exp["width [mm]"]) <= py
    # bridges across the tilted cord (perpendicular to it): 1.5 and 2.5 mm, within one voxel
    assert r["interpolated_dorsal_bridge_width [mm]"] == pytest.approx(1.5, abs=py)
    assert r["interpolated_ventral_bridge_width [mm]"] == pytest.approx(2.5, abs=py)
    # without the correction the A-P gap of an axial slice is longer by 1 / cos(20 deg)
    straight = _run(standard((0.25, 0.25, 0.5))).rows[0]
    assert r["length [mm]"] == pytest.approx(straight["length [mm]"], abs=pz / cos)


def test_two_lesions_and_connectivity():
    ph = standard((0.5, 0.5, 1.0))
    ph.lesions = [Ellipsoid((10.0, 13.63, 10.31), (1.5, 2.0, 3.0)), Ellipsoid((10.0, 14.63, 28.31), (2.0, 1.5, 4.0))]
    lesion, cord = ph.images()
    a = analyze_lesions(lesion, cord)
    assert a.lesion_count == 2 and [r["label"] for r in a.rows] == [1, 2]
    counts = [int((ph.lesion(only=i) & ph.cord()).sum()) for i in range(2)]
    v = 0.5 * 0.5 * 1.0
    assert sorted(r["volume [mm3]"] for r in a.rows) == pytest.approx(sorted(n * v for n in counts))
    assert a.summary["total_volume [mm3]"] == pytest.approx(sum(counts) * v)
    assert a.summary["total_length [mm]"] == pytest.approx(sum(r["length [mm]"] for r in a.rows))
    label = np.asanyarray(a.label_img.dataobj)
    assert sorted(np.bincount(label.ravel())[1:].tolist()) == sorted(counts)
    # two voxels touching at a corner only: one lesion with 26-connectivity, two with SCT's 18
    grid = np.zeros((6, 6, 6), np.uint8)
    grid[2, 2, 2] = grid[3, 3, 3] = 1
    corner = to_image(grid, np.eye(4))
    full = to_image(np.ones_like(grid), np.eye(4))
    assert analyze_lesions(corner, full).lesion_count == 2
    assert analyze_lesions(corner, full, connectivity=3).lesion_count == 1
    grid[3, 3, 3], grid[3, 3, 2] = 0, 1  # an edge: one lesion with 18-connectivity, two with 6
    edge = to_image(grid, np.eye(4))
    assert analyze_lesions(edge, full).lesion_count == 1
    assert analyze_lesions(edge, full, connectivity=1).lesion_count == 2


@pytest.mark.parametrize("top", [True, False])
def test_lesion_at_the_image_edge(top):
    """SCT 7.3 raises IndexError for a lesion centre within two slices of the top (and reads wrapped slices at
    the bottom); here the row is measured and flagged."""
    ph = standard((0.5, 0.5, 1.0))
    ph.lesions = [Ellipsoid((10.0, 13.63, 39.4 if top else 0.2), (1.5, 2.0, 3.0))]
    a = _run(ph)
    r = a.rows[0]
    slices = int(ph.lesion().any(axis=(0, 1)).sum())
    assert r["length [mm]"] == pytest.approx(slices * 1.0)  # straight cord: one slice thickness per slice
    assert r["touches_image_edge"] == 1 and "image edge" in r["note"]
    assert r["interpolated_dorsal_bridge_width [mm]"] == pytest.approx(1.5, abs=0.5)


def test_lesion_partly_and_wholly_outside_the_cord():
    ph = standard((0.5, 0.5, 1.0))
    ph.lesions = [Ellipsoid((10.0, 17.6, 20.31), (1.5, 2.0, 6.0)), Ellipsoid((1.5, 2.0, 8.0), (1.0, 1.0, 2.0))]
    lesion_mask, cord_mask = ph.lesion(), ph.cord()
    a = _run(ph)
    assert a.lesion_count == 1  # the second component lies wholly outside: counted, no row (SCT: crash)
    r = a.rows[0]
    part = ph.lesion(only=0)
    assert r["voxels"] == int((part & cord_mask).sum()) and r["voxels_outside_cord"] == int((part & ~cord_mask).sum())
    assert r["voxels_outside_cord"] > 0 and "outside the cord" in r["note"]
    assert a.summary["voxels_outside_cord"] == int((lesion_mask & ~cord_mask).sum())
    assert a.summary["components_outside_cord"] == 1
    assert r["volume_outside_cord [mm3]"] == pytest.approx(r["voxels_outside_cord"] * 0.25)
    assert not np.any(np.asanyarray(a.label_img.dataobj)[~cord_mask.astype(bool)])  # ids only where analysed


def test_single_slice_lesion_single_slice_cord_and_cord_gaps():
    ph = standard((0.5, 0.5, 2.0))
    ph.lesions = [Ellipsoid((10.0, 14.13, 20.0), (1.5, 2.0, 0.5))]
    r = _run(ph).rows[0]
    assert int(ph.lesion().any(axis=(0, 1)).sum()) == 1
    assert r["length [mm]"] == pytest.approx(2.0) and "single axial slice" in r["note"]
    assert r["max_equivalent_diameter [mm]"] > 0 and r["interpolated_total_bridge_width [mm]"] > 0
    # a cord on one slice only (SCT's spline fit fails): angles 0, the lesion on it is measured
    lesion, cord = ph.images()
    one = np.asanyarray(cord.dataobj).copy()
    one[..., :10] = 0
    one[..., 11:] = 0
    a = analyze_lesions(lesion, to_image(one, cord.affine))
    assert a.lesion_count == 1 and a.rows[0]["length [mm]"] == pytest.approx(2.0)
    # the cord misses some lesion slices: those voxels are outside, the rest is analysed
    gap = np.asanyarray(cord.dataobj).copy()
    gap[..., 10] = 0
    a = analyze_lesions(lesion, to_image(gap, cord.affine))
    assert a.lesion_count == 0 and a.rows[0]["label"] == 0 and a.summary["voxels_outside_cord"] > 0


def test_empty_lesion_mask_gives_a_zero_row(tmp_path):
    ph = standard((0.5, 0.5, 1.0))
    ph.lesions = []
    lesion, cord = ph.images()
    a = analyze_lesions(lesion, cord)
    assert a.lesion_count == 0 and len(a.rows) == 1
    assert a.rows[0]["label"] == 0 and a.rows[0]["volume [mm3]"] == 0.0 and a.rows[0]["note"] == "no lesion found"
    paths = write_analysis(a, tmp_path / "empty")
    lines = paths["csv"].read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("0,0.0,0.0,")
    assert not np.asanyarray(nib.load(paths["label"]).dataobj).any()
    assert json.loads(paths["json"].read_text())["Summary"]["lesion_count"] == 0


def _invariant(row):
    index = {"interpolated_midsagittal_slice", "total_bridge_axial_slice", "dorsal_bridge_axial_slice",
             "ventral_bridge_axial_slice", "centroid_x [mm]", "centroid_y [mm]", "centroid_z [mm]"}
    return {k: v for k, v in row.items() if k not in index and not k.startswith("slice_")}


def test_any_of_the_48_orientations_gives_the_same_rows():
    ph = standard((0.5, 0.5, 1.0))
    ph.lesions.append(Ellipsoid((9.2, 14.5, 8.31), (1.0, 1.2, 2.5)))
    ref = _run(ph, perslice=True)
    ref_rows = [_invariant(r) for r in ref.rows]
    for ornt in all_orientations():
        lesion, cord = ph.images(ornt)
        a = analyze_lesions(lesion, cord, perslice=True)
        assert [_invariant(r) for r in a.rows] == ref_rows, ornt
        for r, r0 in zip(a.rows, ref.rows):
            # slice numbers are the input's own indices: mapped back to RPI they agree
            assert a.grid.input_index(0, r["interpolated_midsagittal_slice"]) == pytest.approx(
                r0["interpolated_midsagittal_slice"])
            assert a.grid.input_index(2, r["total_bridge_axial_slice"]) == r0["total_bridge_axial_slice"]
            assert [r[f"centroid_{k} [mm]"] for k in "xyz"] == pytest.approx([r0[f"centroid_{k} [mm]"] for k in "xyz"])
        assert np.array_equal(a.grid.to_rpi(np.asanyarray(a.label_img.dataobj)),
                              np.asanyarray(ref.label_img.dataobj))


def test_oblique_and_anisotropic_grids():
    ph = standard((0.5, 0.5, 1.0))
    t = np.deg2rad(14.0)
    rot = np.eye(4)
    rot[:3, :3] = [[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]]
    lesion, cord = ph.images(affine=rot @ ph.affine())
    oblique = analyze_lesions(lesion, cord).rows[0]
    straight = _run(ph).rows[0]
    assert _invariant(oblique) == _invariant(straight)  # measures are in voxel axes, as SCT's
    thick = standard((0.5, 0.5, 3.0))
    r = _run(thick).rows[0]
    exp = thick.expected()
    b, c = thick.lesions[0].semi_axes[1:]
    assert abs(r["length [mm]"] - exp["length [mm]"]) <= 3.0
    # the widest section sampled is at most pz / 2 from the centre: half-width >= b sqrt(1 - (pz / 2c)^2)
    shrink = b * (1 - np.sqrt(1 - (1.5 / c) ** 2))
    for k in ("dorsal", "ventral"):
        key = f"interpolated_{k}_bridge_width [mm]"
        assert abs(r[key] - exp[key]) <= 0.5 + shrink


def test_label_map_through_the_task_label_scheme_and_files(tmp_path):
    ph = standard((0.5, 0.5, 1.0))
    lesion, cord = ph.images()
    labels = np.asanyarray(cord.dataobj).astype(np.uint8) + np.asanyarray(lesion.dataobj)  # SCIseg: 1 cord, 2 lesion
    a = analyze_label_map(to_image(labels, cord.affine), SCISEG.labels)
    assert a.rows == analyze_lesions(lesion, cord).rows
    paths = write_analysis(a, tmp_path / "scan_lesion_seg")
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert header[:len(SCT_COLUMNS)] == list(SCT_COLUMNS)
    side = json.loads(paths["json"].read_text())
    assert side["Lesions"][0]["volume [mm3]"] == pytest.approx(a.rows[0]["volume [mm3]"])
    assert set(side["Columns"]) == set(a.columns)
    assert not list(tmp_path.glob(".*.tmp"))
    lab = nib.load(paths["label"])
    assert np.allclose(lab.affine, lesion.affine) and int(np.asanyarray(lab.dataobj).max()) == 1


# ------------------------------------------------------------------------------------- parity with SCT 7.3
def _benchmark_module():
    spec = importlib.util.spec_from_file_location("compare_analyze_lesion",
                                                  REPO / "benchmarks" / "compare_analyze_lesion.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not sct_pythons() or not DATA.is_dir(), reason="needs SCT environments (SCISEG_SCT_PYTHONS)")
def test_parity_with_sct_7_3(tmp_path):
    """SCT's own sct_analyze_lesion on the same masks: every SCT cell within the issue's criteria (volume exact;
    lengths, widths, bridges within max(0.1 mm, 2 %); damage ratio 0.01; midsagittal slice 0.05), and the same
    lesion-id image. The top-edge lesion is a known SCT 7.3 crash (IndexError) that is measured here."""
    python = sct_python("7.3")
    if python is None:
        pytest.skip("no SCT 7.3 among SCISEG_SCT_PYTHON / SCISEG_SCT_PYTHONS")
    bench = _benchmark_module()
    names = {"phantom tilted 20°", "phantom two lesions", "phantom top edge"}
    edge = standard((0.5, 0.5, 1.0))
    edge.lesions = [Ellipsoid((10.0, 13.63, 39.4), (1.5, 2.0, 3.0))]
    bench_phantoms = bench.phantoms
    bench.phantoms = lambda: {**bench_phantoms(), "phantom top edge": (edge, None, None)}
    cases = bench.build_cases(tmp_path, 0, names)
    sct = bench.run_sct(cases, python, workers=2)
    assert "IndexError" in sct["phantom top edge"].get("error", "")
    for case in cases:
        ours = bench.run_ours(case, repeat=1)[0]
        if case["name"] == "phantom top edge":
            assert ours[0]["touches_image_edge"] == 1 and ours[0]["length [mm]"] > 0
            continue
        cells = bench.compare(sct[case["name"]]["rows"], ours)
        bad = [c for c in cells if not c[-1]]
        assert cells and not bad, (case["name"], bad)
        stem = Path(case["lesion"]).name.replace(".nii.gz", "")
        sct_label = np.asanyarray(nib.load(Path(case["out"]) / f"{stem}_label.nii.gz").dataobj)
        mine = bench.analyze_lesion_files(case["lesion"], case["cord"]).label_img
        assert np.array_equal(sct_label.astype(int), np.asanyarray(mine.dataobj).astype(int)), case["name"]


# --------------------------------------------------------------------------------------------------- QC
def test_qc_bridge_picture_and_report_columns(tmp_path):
    from PIL import Image

    from sct_task_sciseg.qc import Roles, write_qc
    from sct_task_sciseg.qc.bridge_pictures import DORSAL_RGB, VENTRAL_RGB

    ph = standard((0.5, 0.5, 1.0))
    lesion, cord = ph.images()
    analysis = analyze_lesions(lesion, cord)
    image = to_image(ph.cord().astype(np.uint8) * 100 + 20, ph.affine())
    image = nib.Nifti1Image(np.asanyarray(image.dataobj).astype(np.float32), image.affine, image.header)
    entry_path = write_qc(tmp_path / "qc", tmp_path / "sub-01_T2w.nii.gz", image, {"sc": cord, "lesion": lesion},
                          model_tag="test", task_name=SCISEG.name, analysis=analysis,
                          roles=Roles.of(SCISEG.labels))
    entry = json.loads(entry_path.read_text())
    assert entry["analysis"]["summary"]["lesion_count"] == 1
    pic = np.asarray(Image.open(tmp_path / "qc" / entry["pictures"]["bridges"]).convert("RGB"))
    runs = {}
    for name, colour in (("dorsal", DORSAL_RGB), ("ventral", VENTRAL_RGB)):
        hit = np.all(pic == colour, axis=2)
        row = np.argmax(hit.sum(axis=1))  # the bridge line is the longest run of its colour
        runs[name] = int(hit[row].sum())
    # the drawn lines are 1.5 and 2.5 mm long on the same scale (+- 2 px for the line caps)
    assert runs["dorsal"] / runs["ventral"] == pytest.approx(1.5 / 2.5, abs=4 / runs["ventral"])
    page = (tmp_path / "qc" / "index.html").read_text()
    row = analysis.rows[0]
    d, v = row["interpolated_dorsal_bridge_width [mm]"], row["interpolated_ventral_bridge_width [mm]"]
    assert "Bridges mm" in page and f"{d:.2f} / {v:.2f}" in page and "_bridges_thumb.png" in page


def test_analysis_core_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, sct_task_sciseg.analysis, sct_task_sciseg.cli.analyze_lesion; "
            "print(sorted(m for m in ('torch', 'nnunetv2', 'pandas', 'skimage') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
