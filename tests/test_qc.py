"""Quality control: pixels of the pictures, numbers and flags, the index page (also in a real browser), and
parallel writers sharing one QC folder."""
import csv
import html
import io
import json
import multiprocessing
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sct_task_sciseg import qc
from sct_task_sciseg.qc import folder as qc_folder
from sct_task_sciseg.tasks import SCISEG
from sct_task_sciseg.qc import report as qc_report
from sct_task_sciseg.qc import index_rows as qc_rows

from conftest import DATA  # noqa: E402  (repo-relative shared data, or $SCISEG_TEST_DATA)

ROLES = qc.Roles.of(SCISEG.labels)
T2 = DATA / "t2"
needs_data = pytest.mark.skipif(not (T2 / "t2_fake_lesion.nii.gz").is_file(),
                                reason="SCT's testing data not found (set SCISEG_TEST_DATA)")


# ---------------------------------------------------------------------------------------------- helpers
def load_fake_lesion():
    image = nib.load(T2 / "t2_fake_lesion.nii.gz")
    masks = {"sc": nib.load(T2 / "t2_fake_lesion_sc_seg.nii.gz"),
             "lesion": nib.load(T2 / "t2_fake_lesion_lesion_seg.nii.gz")}
    return image, masks


def reorient(img, codes):
    """The same volume stored with other axis codes (data permuted/flipped, affine adjusted)."""
    start = nib.orientations.io_orientation(img.affine)
    return img.as_reoriented(nib.orientations.ornt_transform(start, nib.orientations.axcodes2ornt(codes)))


def canonical_bool(img):
    return np.asarray(nib.as_closest_canonical(img).dataobj) > 0


def colour_classes(rgb):
    rgb = rgb.astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = (r - np.maximum(g, b)) > 30
    cyan = (np.minimum(g, b) - r) > 30
    hue = (np.max(rgb, -1) - np.min(rgb, -1)) > 8  # anything not grey
    return red, cyan, hue


# ------------------------------------------------------------------------------------------------ pixels
@needs_data
def test_pixels_match_the_masks():
    image, masks = load_fake_lesion()
    cord, lesion = canonical_bool(masks["sc"]), canonical_bool(masks["lesion"])
    mosaics = qc.render_mosaics(image, masks, "t2_fake_lesion", roles=ROLES)
    for kind, mosaic in mosaics.items():
        red, cyan, hue = colour_classes(mosaic.overlay)
        in_panels = np.zeros(hue.shape, bool)
        n_cyan = 0
        for p in mosaic.panels:
            h, w = p.shape
            win = (slice(p.top, p.top + h), slice(p.left, p.left + w))
            in_panels[win] = True
            vox = p.voxels(cord.shape)
            inside = vox[0] >= 0
            idx = tuple(np.clip(vox, 0, None))
            want_lesion = lesion[idx] & inside
            want_cord = cord[idx] & inside & ~want_lesion
            # cyan exactly where the lesion projects, red only on cord voxels, grey elsewhere
            assert np.array_equal(cyan[win], want_lesion), f"{kind} {p.label}: cyan differs from the lesion"
            assert not (red[win] & ~want_cord).any(), f"{kind} {p.label}: red outside the cord"
            assert red[win][want_cord].mean() > 0.99 if want_cord.any() else True, f"{kind} {p.label}: cord not red"
            assert not (hue[win] & ~(want_cord | want_lesion)).any(), f"{kind} {p.label}: colour off the masks"
            n_cyan += int(cyan[win].sum())
        assert not hue[~in_panels].any(), f"{kind}: coloured pixels outside the pictures"
        assert n_cyan > 50, f"{kind}: the lesion is not shown"
        # the plain twin: same layout, no colour at all, the same grey off the masks
        assert mosaic.plain.shape == mosaic.overlay.shape
        assert not colour_classes(mosaic.plain)[2].any()
        same = in_panels & ~hue
        assert np.array_equal(mosaic.plain[same], mosaic.overlay[same])


@needs_data
def test_orientation_of_the_pictures():
    """S up and A left in the sagittal picture, checked against world coordinates, not the module's geometry."""
    image, masks = load_fake_lesion()
    aff = image.affine
    world = lambda m: nib.affines.apply_affine(aff, np.argwhere(np.asarray(m.dataobj) > 0))  # noqa: E731
    les_w, cord_w = world(masks["lesion"]), world(masks["sc"])
    assert les_w[:, 2].mean() < cord_w[:, 2].mean() - 10  # the lesion is inferior to the cord's middle
    top = cord_w[cord_w[:, 2] > np.percentile(cord_w[:, 2], 80)]
    bottom = cord_w[cord_w[:, 2] < np.percentile(cord_w[:, 2], 20)]
    assert top[:, 1].mean() > bottom[:, 1].mean() + 3  # lordosis: the upper cord lies more anterior

    mosaic = qc.render_mosaics(image, masks, roles=ROLES)["sagittal"]
    p = next(p for p in mosaic.panels if p.label == "centreline")
    h, w = p.shape
    red, cyan, _ = colour_classes(mosaic.overlay[p.top:p.top + h, p.left:p.left + w])
    rows_red, cols_red = np.nonzero(red)
    rows_cyan = np.nonzero(cyan)[0]
    assert rows_cyan.mean() > rows_red.mean() + 0.1 * h  # inferior = lower in the picture
    upper = cols_red[rows_red < h / 4].mean()
    lower = cols_red[rows_red > 3 * h / 4].mean()
    assert upper < lower - 5  # anterior = left


@needs_data
def test_axial_orientation_radiological():
    """A lesion in the patient's right-anterior cord shows left of and above the cord's centre in axial tiles."""
    image = nib.load(T2 / "t2_fake_lesion.nii.gz")
    cord_img = nib.load(T2 / "t2_fake_lesion_sc_seg.nii.gz")
    cord = np.asarray(cord_img.dataobj) > 0
    ijk = np.argwhere(cord)
    xyz = nib.affines.apply_affine(image.affine, ijk)
    lesion = np.zeros(cord.shape, np.uint8)
    z_mid = np.median(xyz[:, 2])
    pick = np.abs(xyz[:, 2] - z_mid) < 4
    # right-anterior quadrant of the cord, per axial level (world coordinates, RAS+: R = +x, A = +y)
    for zc in np.unique(np.round(xyz[pick, 2])):
        level = pick & (np.round(xyz[:, 2]) == zc)
        cx, cy = xyz[level, 0].mean(), xyz[level, 1].mean()
        sel = level & (xyz[:, 0] > cx + 1.0) & (xyz[:, 1] > cy + 1.0)
        lesion[tuple(ijk[sel].T)] = 1
    assert lesion.sum() > 20
    masks = {"sc": cord_img, "lesion": nib.Nifti1Image(lesion, image.affine)}
    for img, m in ((image, masks), (reorient(image, ("L", "P", "S")),
                                     {k: reorient(v, ("L", "P", "S")) for k, v in masks.items()})):
        mosaic = qc.render_mosaics(img, m, roles=ROLES)["axial"]
        checked = 0
        for p in mosaic.panels:
            h, w = p.shape
            red, cyan, _ = colour_classes(mosaic.overlay[p.top:p.top + h, p.left:p.left + w])
            if cyan.sum() < 5:
                continue
            r_c, c_c = np.nonzero(cyan)
            r_r, c_r = np.nonzero(red | cyan)
            assert c_c.mean() < c_r.mean(), "patient's right must be on the viewer's left"
            assert r_c.mean() < r_r.mean(), "anterior must be up"
            checked += 1
        assert checked >= 2


@needs_data
def test_any_input_orientation_gives_the_same_pictures():
    image, masks = load_fake_lesion()
    ref = qc.render_mosaics(image, masks, roles=ROLES)
    # an axial-style storage (LPS) and an odd permutation; then a rotated (oblique) affine
    variants = [(reorient(image, c), {k: reorient(v, c) for k, v in masks.items()})
                for c in (("L", "P", "S"), ("I", "L", "A"))]
    for img, m in variants:
        assert nib.aff2axcodes(img.affine) != nib.aff2axcodes(image.affine)
        out = qc.render_mosaics(img, m, roles=ROLES)
        for kind in ref:
            assert len(out[kind].panels) == len(ref[kind].panels)
            for p, q in zip(ref[kind].panels, out[kind].panels):
                assert (p.top, p.left, p.shape) == (q.top, q.left, q.shape)
                h, w = p.shape
                a = ref[kind].overlay[p.top:p.top + h, p.left:p.left + w]
                b = out[kind].overlay[q.top:q.top + h, q.left:q.left + w]
                assert np.array_equal(a, b), f"{kind} {p.label} differs for {nib.aff2axcodes(img.affine)}"
    # a rotated (oblique) affine: same closest orientation, so the same pictures
    aff = image.affine.copy()
    aff[:3, :] = nib.eulerangles.euler2mat(z=np.deg2rad(12), x=np.deg2rad(-8)) @ aff[:3, :]
    oblique = nib.Nifti1Image(np.asarray(image.dataobj), aff)
    out = qc.render_mosaics(oblique, {k: nib.Nifti1Image(np.asarray(v.dataobj), aff) for k, v in masks.items()},
                             roles=ROLES)
    assert np.array_equal(out["axial"].overlay[40:], ref["axial"].overlay[40:])


def test_every_lesion_component_gets_an_axial_tile():
    rng = np.random.default_rng(0)
    shape = (40, 44, 120)
    img = rng.normal(100, 10, shape).astype(np.float32)
    cord = np.zeros(shape, np.uint8)
    cord[16:25, 18:27, 5:115] = 1
    lesion = np.zeros(shape, np.uint8)
    zs = list(range(8, 112, 3))  # 35 one-voxel lesions, many more than the tile budget
    for i, z in enumerate(zs):
        lesion[18 + i % 5, 20 + i % 4, z] = 1
    aff = np.diag([0.5, 0.5, 0.5, 1.0])
    image = nib.Nifti1Image(img, aff)
    masks = {"sc": nib.Nifti1Image(cord, aff), "lesion": nib.Nifti1Image(lesion, aff)}
    mosaic = qc.render_mosaics(image, masks, roles=ROLES)["axial"]
    shown = {int(np.rint(p.zf)) for p in mosaic.panels}
    assert set(zs) <= shown
    red, cyan, _ = colour_classes(mosaic.overlay)
    for p in mosaic.panels:
        h, w = p.shape
        if int(np.rint(p.zf)) in zs:
            assert cyan[p.top:p.top + h, p.left:p.left + w].any()
    # a lesion off the cord (a false positive elsewhere) still lands inside its tile
    lesion2 = np.zeros(shape, np.uint8)
    lesion2[2:4, 2:4, 60] = 1
    masks["lesion"] = nib.Nifti1Image(lesion2, aff)
    mosaic = qc.render_mosaics(image, masks, roles=ROLES)["axial"]
    tile = next(p for p in mosaic.panels if int(np.rint(p.zf)) == 60)
    h, w = tile.shape
    assert colour_classes(mosaic.overlay[tile.top:tile.top + h, tile.left:tile.left + w])[1].any()


def test_empty_masks_render():
    shape = (30, 30, 20)
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    image = nib.Nifti1Image(np.random.default_rng(1).random(shape).astype(np.float32), aff)
    masks = {"sc": nib.Nifti1Image(np.zeros(shape, np.uint8), aff)}
    with tempfile.TemporaryDirectory() as tmp:
        paths = qc.render_qc(image, masks, Path(tmp), "empty", roles=ROLES)
        assert set(paths) == {f"{k}{v}{t}" for k in ("sagittal", "axial") for v in ("", "_plain")
                              for t in ("", "_thumb")}
        for p in paths.values():
            assert p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = qc.lesion_stats(masks, aff, ROLES)
    assert stats["flags"] == ["empty-cord"] and stats["cord_volume_mm3"] == 0


# ------------------------------------------------------------------------------------------------ numbers
@needs_data
def test_lesion_stats_reference_masks():
    image, masks = load_fake_lesion()
    s = qc.lesion_stats(masks, image.affine, ROLES)
    vox = 0.8 * 0.8 * 0.80000114
    assert s["cord_voxels"] == 7335 and s["lesion_voxels"] == 163
    assert s["cord_volume_mm3"] == pytest.approx(7335 * vox, abs=0.05)
    assert s["lesion_count"] == 1
    assert s["lesion_volume_mm3"] == pytest.approx(163 * vox, abs=0.05)
    assert s["flags"] == []


def test_lesion_stats_flags_and_connectivity():
    shape = (20, 20, 30)
    aff = np.diag([0.5, 0.5, 2.0, 1.0])  # RAS, voxel 0.5 mm³
    cord = np.zeros(shape, np.uint8)
    cord[8:13, 8:13, :] = 1  # runs through S/I: not a flag
    lesion = np.zeros(shape, np.uint8)
    lesion[9, 9, 10] = lesion[10, 10, 10] = 1  # edge-touching: one lesion (18-connectivity, as SCT counts)
    lesion[11, 11, 20] = lesion[12, 12, 21] = 1  # corner-touching only: two lesions for SCT, one with 26
    s = qc.lesion_stats({"sc": cord, "lesion": lesion}, aff, ROLES)
    assert s["lesion_count"] == 3 and s["lesion_volumes_mm3"] == [1.0, 0.5, 0.5]
    assert s["lesion_volume_mm3"] == 2.0 and s["cord_volume_mm3"] == 25 * 30 * 0.5
    from sct_task_sciseg.analysis import analyze_masks
    from sct_task_sciseg.tasks import SCISEG
    img = nib.Nifti1Image(lesion.astype(np.float32), aff)
    masks = {"sc": nib.Nifti1Image(cord, aff), "lesion": nib.Nifti1Image(lesion, aff)}
    assert len(analyze_masks(masks, SCISEG.labels, img).lesions) == s["lesion_count"]  # one way of counting
    assert s["flags"] == []
    lesion[2, 2, 5] = 1  # outside the cord
    cord[0:3, 8:13, 3] = 1  # reaches the L edge (x index 0 with R+ axis)
    lesion[11, 11, 29] = 1  # touches the superior edge
    s = qc.lesion_stats({"sc": cord, "lesion": lesion}, aff, ROLES)
    assert s["flags"] == ["lesion-outside-cord", "cord-at-fov-edge", "lesion-at-fov-edge"]
    assert s["cord_fov_edges"] == ["L"] and s["lesion_fov_edges"] == ["S"]
    assert s["lesion_outside_cord_voxels"] == 1


def test_model_note_marks_demo_models_by_release_and_hash():
    from sct_task_sciseg.qc.entry import command_line, model_note
    from sct_task_sciseg.tasks import SCISEG

    demo = SCISEG.demo_release
    assert demo.embedded and demo.tag == "phantom-r20261124"
    assert model_note(SCISEG.name, demo.tag) == {"model_description": demo.description, "model_demo": True}
    v2 = SCISEG.release("r20240729")
    assert model_note("lesion_sci_t2", v2.tag) == {"model_description": v2.description, "model_demo": False}
    # the demo weights installed under another tag (as the tests do): still a demo model, by its hash
    assert model_note(SCISEG.name, v2.tag, demo.sha256)["model_demo"] is True
    assert model_note(SCISEG.name, v2.tag, "0" * 64)["model_demo"] is False
    assert model_note(SCISEG.name, "custom") == {"model_description": None, "model_demo": False}
    assert model_note("no_such_task", demo.tag) == {"model_description": None, "model_demo": False}
    assert command_line(["/x/.venv/bin/sciseg", "-i", "a b.nii.gz", "-thr", "0.3"]) == "sciseg -i 'a b.nii.gz' -thr 0.3"
    assert command_line(["/x/sct_task_sciseg/__main__.py", "-demo"]) == "python -m sct_task_sciseg -demo"
    assert command_line(None) is None and command_line([]) is None


def test_read_participants_controls(tmp_path):
    assert qc_folder.read_participants_controls(tmp_path) == set()
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tsex\tpathology\n sub-01\tM\tHC\nsub-02\tF\tSCI\nsub-03\tF\tHealthy Control\n"
        "sub-04\tM\tDCM\n")
    assert qc_folder.read_participants_controls(tmp_path) == {"sub-01", "sub-03"}
    (tmp_path / "participants.tsv").write_text("participant_id\tGroup\nsub-a\tpatient\nsub-b\tcontrol\n")
    assert qc_folder.read_participants_controls(tmp_path) == {"sub-b"}
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-a\t30\n")
    assert qc_folder.read_participants_controls(tmp_path) == set()


# ------------------------------------------------------------------------------------------------ report
class _Rows(HTMLParser):
    """Rows of the scans table in document order, with their attributes (``hidden`` included)."""

    def __init__(self):
        super().__init__()
        self.rows, self.body, self.images = [], {}, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "scan" in (a.get("class") or "").split():
            self.rows.append(a)
        elif tag == "body":
            self.body = a
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])


def parse(html_text):
    p = _Rows()
    p.feed(html_text)
    return p


def make_bids(root: Path):
    """A tiny BIDS tree: sub-01 t2_fake_lesion, sub-02 the same volume stored reoriented (listed as a healthy
    control), sub-03 t2.nii.gz with its manual cord mask and an empty lesion mask."""
    (root / "participants.tsv").parent.mkdir(parents=True, exist_ok=True)
    (root / "participants.tsv").write_text("participant_id\tpathology\nsub-01\tSCI\nsub-02\tHC\nsub-03\tHC\n")
    (root / "dataset_description.json").write_text('{"Name": "demo", "BIDSVersion": "1.9.0"}')
    image, masks = load_fake_lesion()
    scans = [("sub-01", image, masks)]
    codes = ("L", "P", "S")
    scans.append(("sub-02", reorient(image, codes), {k: reorient(v, codes) for k, v in masks.items()}))
    t2 = nib.load(T2 / "t2.nii.gz")
    scans.append(("sub-03", t2, {"sc": nib.load(T2 / "t2_seg-manual.nii.gz"),
                                 "lesion": nib.Nifti1Image(np.zeros(t2.shape, np.uint8), t2.affine)}))
    out = []
    for sub, img, m in scans:
        path = root / sub / "anat" / f"{sub}_T2w.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(img, path)
        out.append((path, img, m))
    return out


RUN = {"Parameters": {"tile_step_size": 0.5, "precision": "fp32", "thr": None, "remove_small": ["lesion:5mm3"]},
       "ModelSHA256": None}
RUN_FLAGS = ["-remove-small", "lesion:5mm3", "-qc-dataset", "it's demo"]  # a quote to shell-quote


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not (T2 / "t2_fake_lesion.nii.gz").is_file():
        pytest.skip("SCT's testing data not found (set SCISEG_TEST_DATA)")
    base = tmp_path_factory.mktemp("qc")
    bids = base / "demo"
    qc_dir = base / "qc"
    times = []
    for i, (path, img, m) in enumerate(make_bids(bids)):
        t0 = time.perf_counter()
        qc.write_qc(qc_dir, path, img, m, model_tag="phantom-r20261124" if i == 2 else "r20240729",
                    task_name="seg_sc_lesion_t2w_sci", roles=ROLES, generated_by=RUN,
                    command=["/opt/venv/bin/sciseg", "-i", str(path), "-qc", str(qc_dir), *RUN_FLAGS])
        times.append(time.perf_counter() - t0)
    print(f"write_qc per scan: {', '.join(f'{t * 1000:.0f} ms' for t in times)}")
    return qc_dir


def test_report_three_scans(report):
    entries = qc_folder.load_entries(report)
    assert [e["subject"] for e in entries] == ["sub-01", "sub-02", "sub-03"]
    by = {e["subject"]: e for e in entries}
    assert by["sub-01"]["dataset"] == "demo" and by["sub-01"]["is_control"] is False
    assert by["sub-02"]["is_control"] is True and by["sub-02"]["flags"] == ["lesion-in-control"]
    assert by["sub-03"]["flags"] == [] and by["sub-03"]["stats"]["lesion_count"] == 0
    assert by["sub-01"]["stats"] == by["sub-02"]["stats"]  # same volume, stored reoriented
    assert by["sub-02"]["orientation"] == "LPS"
    # the run behind each row, and the demo model (the task's embedded release) marked
    path = report.parent / "demo" / "sub-01" / "anat" / "sub-01_T2w.nii.gz"
    assert by["sub-01"]["command"] == (f"sciseg -i {path} -qc {report} -remove-small lesion:5mm3 "
                                       "-qc-dataset 'it'\"'\"'s demo'")
    assert shlex.split(by["sub-01"]["command"])[1:] == ["-i", str(path), "-qc", str(report), *RUN_FLAGS]
    assert by["sub-01"]["parameters"] == RUN["Parameters"] and by["sub-01"]["cwd"] == os.getcwd()
    assert [by[s]["model_demo"] for s in ("sub-01", "sub-02", "sub-03")] == [False, False, True]
    assert "not for research" in by["sub-03"]["model_description"]

    text = (report / "index.html").read_text()
    page = parse(text)
    assert [r["data-subject"] for r in page.rows] == ["sub-02", "sub-01", "sub-03"]  # flagged rows first
    assert [r["data-order"] for r in page.rows] == ["1", "0", "2"]  # export order: dataset, subject, ...
    assert page.body["data-rows"] == "3"
    assert [r["data-demo"] for r in page.rows] == ["", "", "1"] and page.rows[2]["class"] == "scan demo"
    assert text.count(qc_rows.DEMO_MARK) == 2  # the row's mark and the count in the toolbar
    assert "1 made with a demo model" in text
    assert html.escape(by["sub-01"]["command"]) in text and "<dt>remove_small</dt>" in text
    # self-contained: relative picture paths that exist, nothing fetched from elsewhere
    assert len(page.images) == 12
    for src in page.images:
        assert not re.match(r"^[a-z]+:", src) and not src.startswith("/")
        assert (report / src).is_file()
    assert not re.search(r"<link\b|@import|<script[^>]+src=|https?://|<iframe|<object", text, re.I)
    assert not re.search(r"(?<![\w.])url\(", text)  # no CSS url(...) (URL.createObjectURL is fine)
    for e in entries:
        for rel in e["pictures"].values():
            assert (report / rel).is_file()


def _write_entries(args):
    qc_dir, worker, barrier = args
    barrier.wait()
    for k in range(2):  # the second write replaces the first: same id
        entry = {"id": f"scan-{worker:02d}", "subject": f"sub-{worker:02d}", "file": f"sub-{worker:02d}_T2w.nii.gz",
                 "stats": {"lesion_count": worker % 3, "lesion_volume_mm3": float(worker), "cord_volume_mm3": 1.0},
                 "flags": ["lesion-in-control"] if worker % 4 == 0 else [], "pictures": {}, "round": k}
        qc_report.add_qc_entry(qc_dir, entry)
    return worker


def test_parallel_writers_never_lose_a_row(tmp_path):
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    n = 8
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            done = pool.map(_write_entries, [(tmp_path, i, barrier) for i in range(n)])
    assert sorted(done) == list(range(n))
    entries = qc_folder.load_entries(tmp_path)
    assert len(entries) == n and all(e["round"] == 1 for e in entries)
    page = parse((tmp_path / "index.html").read_text())
    assert sorted(r["data-id"] for r in page.rows) == [f"scan-{i:02d}" for i in range(n)]
    assert not [p for p in (tmp_path / "entries").iterdir() if p.suffix != ".json"]  # no temporary leftovers
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".index.html")]


# ------------------------------------------------------------------------------------------------ browser
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--window-size=1500,900"]


CLICKS = """<script>
window.addEventListener('load', function () {
  var b = document.body.dataset, order = function () {
    return Array.prototype.map.call(document.querySelectorAll('tr.scan'), function (r) { return r.dataset.subject; })
      .join(',');
  };
  var th = document.querySelector('th[data-key="lesion_volume"]');
  th.click(); b.tFirst = order();
  th.click(); b.tSecond = order();
  document.querySelector('th[data-key="subject"]').click();
  document.querySelector('tr.scan a.thumb[data-kind="axial"]').click();
  b.tViewer = document.getElementById('viewer').hidden ? 'closed' : 'open';
  var img = document.getElementById('vimg');
  b.tSrc = img.getAttribute('src');
  document.dispatchEvent(new KeyboardEvent('keydown', {key: 'o'})); b.tPlain = img.getAttribute('src');
  document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'})); b.tNext = img.getAttribute('src');
  document.dispatchEvent(new KeyboardEvent('keydown', {key: 'f'}));
  b.tReview = document.querySelectorAll('tr.scan')[1].dataset.review;
  b.tDone = '1';
});
</script>"""


def _browser(chromium, tmp, args, url):
    profile = tempfile.mkdtemp(prefix="profile-", dir=tmp)
    return subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc, timeout=90):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_index_in_headless_chromium(report, tmp_path):
    from cdp_pipe import find_chromium

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)")
    probe = tmp_path / "probe.html"
    probe.write_text("<!DOCTYPE html><body><p id=x>probe</p><script>document.body.dataset.js='on'</script>")
    rc, out, err = _finish(_browser(chromium, tmp_path, ["--dump-dom"], probe.as_uri()))
    if rc != 0 or 'data-js="on"' not in out:
        pytest.skip(f"Chromium cannot run here (exit {rc}): {err.strip()[-300:]}")

    index = (report / "index.html").as_uri()
    shot = tmp_path / "index.png"
    # a copy of the page, next to it, that clicks like a user once loaded: header twice, a thumbnail, keys
    clicker = report / "clicks.html"
    clicker.write_text((report / "index.html").read_text().replace("</body>", CLICKS + "</body>"))
    procs = {
        "shot": _browser(chromium, tmp_path, [f"--screenshot={shot}"], index),
        "plain": _browser(chromium, tmp_path, ["--dump-dom"], index),
        "asc": _browser(chromium, tmp_path, ["--dump-dom"], index + "#sort=lesion_volume&dir=asc"),
        "desc": _browser(chromium, tmp_path, ["--dump-dom"], index + "#sort=lesion_volume&dir=desc"),
        "flag": _browser(chromium, tmp_path, ["--dump-dom"], index + "#flag=lesion-in-control"),
        "clicks": _browser(chromium, tmp_path, ["--dump-dom"], clicker.as_uri()),
    }
    results = {k: _finish(p) for k, p in procs.items()}
    pages = {k: parse(out) for k, (rc, out, err) in results.items() if k != "shot"}

    # one row per scan, every thumbnail loaded (the page counts them once the load event fired)
    plain = pages["plain"]
    assert plain.body.get("data-ready") == "1", results["plain"][2][-500:]
    assert len(plain.rows) == 3
    assert plain.body["data-images-loaded"] == "12" and plain.body["data-images-failed"] == "0"
    # sorting changes the order
    order = {k: [r["data-subject"] for r in pages[k].rows] for k in ("plain", "asc", "desc")}
    assert order["plain"] == ["sub-02", "sub-01", "sub-03"]  # flagged rows first
    assert order["asc"][0] == "sub-03"  # no lesion first
    assert order["desc"][-1] == "sub-03" and order["desc"] != order["asc"]
    # the flag filter hides the other rows
    flag = pages["flag"]
    visible = [r["data-subject"] for r in flag.rows if "hidden" not in r]
    assert visible == ["sub-02"] and flag.body["data-visible-rows"] == "1"

    # real clicks and keys: sorting by a header, the viewer, overlay toggle, a review
    clicks = pages["clicks"].body
    assert clicks.get("data-t-done") == "1", results["clicks"][2][-800:]
    assert clicks["data-t-first"] == "sub-03,sub-01,sub-02" and clicks["data-t-second"] == "sub-01,sub-02,sub-03"
    assert clicks["data-t-viewer"] == "open"
    assert clicks["data-t-src"].endswith("_axial.png") and clicks["data-t-plain"].endswith("_axial_plain.png")
    assert clicks["data-t-next"].startswith("pictures/") and clicks["data-t-next"] != clicks["data-t-src"]
    assert clicks["data-t-review"] == "fail"

    rc, out, err = results["shot"]
    assert rc == 0 and shot.is_file(), err[-500:]
    from PIL import Image

    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert rgb.shape[:2] == (900, 1500)
    red, cyan, _ = colour_classes(rgb)
    assert red.sum() > 500 and cyan.sum() > 20  # thumbnails painted: cord and lesion visible
    target = os.environ.get("SCISEG_QC_SCREENSHOT")  # to refresh docs/qc-example.png
    if target:
        shutil.copyfile(shot, target)


# ------------------------------------------------------------------------- reviews: export, import, round trip
READY = "document.body && document.body.dataset.ready === '1'"
STATE = """Array.prototype.slice.call(document.querySelectorAll('tr.scan'))
  .sort(function (a, b) { return a.dataset.order - b.dataset.order; })
  .map(function (r) { return [r.dataset.subject, r.querySelector('td.review select').value,
                              r.querySelector('td.review input.note').value, r.dataset.review]; })"""
REVIEWS = {"sub-01": ("pass", 'C4 lesion, "edge" ok; fine'), "sub-02": ("fail", "lesion in a control"),
           "sub-03": ("unsure", "")}


def _rate(b, subject, verdict, note):
    row = f"document.querySelector('tr.scan[data-subject={json.dumps(subject)}]')"
    b.js(f"var s = {row}.querySelector('td.review select'); s.value = {json.dumps(verdict)};"
         "s.dispatchEvent(new Event('change', {bubbles: true}))")
    if note:  # typed, as a user would
        b.js(f"{row}.querySelector('td.review input.note').focus()")
        b.send("Input.insertText", {"text": note}, page=True)


def _export(b, downloads: Path) -> str:
    b.js("document.getElementById('export').click()")
    begin = b.event("Browser.downloadWillBegin")
    done = b.event("Browser.downloadProgress", lambda p: p["guid"] == begin["guid"] and p["state"] != "inProgress")
    assert begin["suggestedFilename"] == "qc_reviews.csv" and done["state"] == "completed"
    return (downloads / begin["guid"]).read_bytes().decode("utf-8")


def _import(b, path: Path) -> dict:
    b.js("delete document.body.dataset.imported")
    root = b.send("DOM.getDocument", page=True)["root"]["nodeId"]
    node = b.send("DOM.querySelector", {"nodeId": root, "selector": "#import"}, page=True)["nodeId"]
    b.send("DOM.setFileInputFiles", {"files": [str(path)], "nodeId": node}, page=True)
    b.wait_for("document.body.dataset.imported !== undefined")
    return b.js("var d = document.body.dataset; ({imported: +d.imported, byFile: +d.importedByFile, "
                "unmatched: +d.importUnmatched, invalid: +d.importInvalid, "
                "text: document.getElementById('import-result').textContent})")


def _pictures(b):
    return b.js("Array.prototype.map.call(document.querySelectorAll('tr.scan a.thumb img.ov'), function (i) {"
                "return [i.getAttribute('src'), Math.round(i.getBoundingClientRect().height), i.naturalWidth]; })")


def test_reviews_round_trip_in_headless_chromium(report, tmp_path):
    """Rate rows, export the CSV (a real download), clear the browser's storage, import the file through the
    file input: the same ratings and notes come back, survive a reload, and export to the same bytes."""
    from cdp_pipe import open_chromium

    b = open_chromium(tmp_path, CHROMIUM_FLAGS)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    try:
        b.send("Browser.setDownloadBehavior", {"behavior": "allowAndName", "downloadPath": str(downloads),
                                               "eventsEnabled": True})
        b.open((report / "index.html").as_uri(), READY)
        assert b.js(STATE) == [[s, "", "", ""] for s in REVIEWS]
        # the demo mark is shown on the phantom release's row only
        assert b.js("Array.prototype.map.call(document.querySelectorAll('tr.scan'), function (r) {"
                    "var t = r.querySelector('td.model .tag.demo'); return t ? t.getBoundingClientRect().height > 0"
                    " && t.textContent : ''; })") == ["", "", "demo model — not for research"]

        for subject, (verdict, note) in REVIEWS.items():
            _rate(b, subject, verdict, note)
        rated = [[s, v, n, v] for s, (v, n) in REVIEWS.items()]
        assert b.js(STATE) == rated
        first = _export(b, downloads)
        table = list(csv.DictReader(io.StringIO(first)))
        entries = {e["subject"]: e for e in qc_folder.load_entries(report)}
        assert [(r["subject"], r["review"], r["note"]) for r in table] == [(s, v, n) for s, (v, n) in REVIEWS.items()]
        assert [r["id"] for r in table] == [entries[s]["id"] for s in REVIEWS]
        assert [r["image_path"] for r in table] == [entries[s]["image_path"] for s in REVIEWS]
        assert [r["demo"] for r in table] == ["", "", "yes"]

        b.js("localStorage.clear()")
        b.reload(READY)
        assert b.js(STATE) == [[s, "", "", ""] for s in REVIEWS]
        exported = tmp_path / "reviews.csv"
        exported.write_text(first, encoding="utf-8")
        got = _import(b, exported)
        assert (got["imported"], got["byFile"], got["unmatched"], got["invalid"]) == (3, 0, 0, 0), got
        assert got["text"] == "imported 3 review(s)"
        assert b.js(STATE) == rated
        b.reload(READY)  # kept by the browser
        assert b.js(STATE) == rated
        assert _export(b, downloads) == first  # the round trip is exact

        # an entry id that no longer exists falls back on the image path, then on dataset/subject/session/file
        # (data moved); a row that matches nothing, or with an unknown verdict, is counted and left out
        edited = [dict(r) for r in table]
        edited[1].update(id="renamed_0000000000", subject="sub-02-renamed")
        edited[0].update(id="renamed_1111111111", image_path="/moved/" + edited[0]["file"])
        edited.append(dict(table[0], id="gone_1", image_path="/nowhere/x.nii.gz", file="x.nii.gz"))
        edited.append(dict(table[0], id="gone_2", review="maybe"))
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=list(table[0]), lineterminator="\r\n")  # as a spreadsheet writes it
        w.writeheader()
        w.writerows(edited)
        (tmp_path / "edited.csv").write_text("\ufeff" + text.getvalue(), encoding="utf-8")
        b.js("localStorage.clear()")
        b.reload(READY)
        got = _import(b, tmp_path / "edited.csv")
        assert (got["imported"], got["byFile"], got["unmatched"], got["invalid"]) == (3, 2, 1, 1), got
        assert got["text"] == "imported 3 review(s) (2 matched by file), 1 not matched, 1 with an unknown verdict"
        assert b.js(STATE) == rated
        (tmp_path / "other.csv").write_text("a,b\n1,2\n")
        assert _import(b, tmp_path / "other.csv")["imported"] == -1
        assert b.js(STATE) == rated

        # picture size: large thumbnails by default; the setting is remembered; x-large shows the full mosaics
        pics = _pictures(b)
        # (s, m, l: at most that high, scaled down into the window's width; x-large: full height, may scroll)
        assert all(190 <= h <= 260 for _, h, _ in pics) and all(src.endswith("_thumb.png") for src, _, _ in pics)
        assert b.js("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        assert b.js("document.getElementById('pic-size').value") == "l"
        b.js("var s = document.getElementById('pic-size'); s.value = 's';"
             "s.dispatchEvent(new Event('change', {bubbles: true}))")
        b.reload(READY)
        assert b.js("document.getElementById('pic-size').value") == "s"
        assert [h for _, h, _ in _pictures(b)] == [110] * 6
        b.js("var s = document.getElementById('pic-size'); s.value = 'xl';"
             "s.dispatchEvent(new Event('change', {bubbles: true}))")
        b.wait_for("Array.prototype.every.call(document.querySelectorAll('tr.scan a.thumb img.ov'),"
                   "function (i) { return i.complete && i.naturalWidth > 0; })")
        pics = _pictures(b)
        assert [h for _, h, _ in pics] == [400] * 6
        assert [src.rsplit("_", 1)[-1] for src, _, _ in pics] == ["sagittal.png", "axial.png"] * 3
        assert all(w > 1000 for _, _, w in pics)  # the full mosaics, not the thumbnails
        assert b.js("document.body.dataset.imagesFailed") == "0"
    finally:
        err = b.close()
    assert b.proc.returncode is not None, err
