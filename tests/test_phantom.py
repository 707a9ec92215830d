"""The synthetic phantom: deterministic, one object in world space whatever the grid, lesion inside cord."""
import nibabel as nib
import numpy as np
import pytest

from sct_task_sciseg.demo.phantom import ALL_AXCODES, dice, make_phantom

GRIDS = [
    ((0.8, 0.8, 0.8), ("P", "S", "R")),
    ((0.6, 0.7, 2.0), ("R", "A", "S")),  # thick axial slices
    ((1.0, 1.2, 0.9), ("I", "L", "P")),
]


def _world_stats(img, lab):
    data = np.asanyarray(lab.dataobj)
    vox = float(np.prod(img.header.get_zooms()[:3]))
    cord = np.argwhere(data >= 1)
    centroid = nib.affines.apply_affine(img.affine, cord).mean(axis=0)
    return (data >= 1).sum() * vox, (data == 2).sum() * vox, centroid


def test_all_48_orientations_are_listed():
    assert len(ALL_AXCODES) == 48 and len(set(ALL_AXCODES)) == 48
    for codes in ALL_AXCODES:
        assert sorted(c in "LR" for c in codes).count(True) == 1
        assert sorted(c in "PA" for c in codes).count(True) == 1


def test_deterministic_for_a_seed():
    a_img, a_lab = make_phantom(11)
    b_img, b_lab = make_phantom(11)
    np.testing.assert_array_equal(a_img.get_fdata(), b_img.get_fdata())
    np.testing.assert_array_equal(np.asanyarray(a_lab.dataobj), np.asanyarray(b_lab.dataobj))
    np.testing.assert_array_equal(a_img.affine, b_img.affine)
    c_img, _ = make_phantom(12)
    assert c_img.shape != a_img.shape or not np.array_equal(c_img.get_fdata(), a_img.get_fdata())


def test_types_labels_and_lesion_inside_cord():
    img, lab = make_phantom(5, voxel_size=(0.8, 0.8, 0.8), axcodes=("P", "S", "R"))
    assert img.get_data_dtype() == np.float32
    assert lab.get_data_dtype() == np.uint8
    data = np.asanyarray(lab.dataobj)
    assert set(np.unique(data)) <= {0, 1, 2}
    assert (data == 2).sum() > 0 and (data >= 1).sum() > (data == 2).sum()
    np.testing.assert_array_equal(img.affine, lab.affine)
    assert np.isfinite(img.get_fdata()).all() and img.get_fdata().min() >= 0
    # the object's signal: CSF brighter than cord, lesion brighter than cord
    arr = img.get_fdata()
    assert np.median(arr[data == 2]) > 1.3 * np.median(arr[data == 1])


def test_no_lesion_when_asked():
    _, lab = make_phantom(5, voxel_size=(0.8, 0.8, 0.8), axcodes=("P", "S", "R"), lesion=False)
    data = np.asanyarray(lab.dataobj)
    assert (data == 2).sum() == 0 and (data == 1).sum() > 0


@pytest.mark.parametrize("voxel_size,axcodes", GRIDS)
def test_affine_matches_request(voxel_size, axcodes):
    img, lab = make_phantom(3, voxel_size=voxel_size, axcodes=axcodes)
    assert nib.aff2axcodes(img.affine) == axcodes
    assert nib.aff2axcodes(lab.affine) == axcodes
    np.testing.assert_allclose(img.header.get_zooms()[:3], voxel_size, rtol=1e-5)
    assert int(img.header["sform_code"]) > 0 and int(img.header["qform_code"]) > 0
    np.testing.assert_allclose(img.get_qform(), img.affine, atol=1e-4)


def test_same_object_in_world_space_across_grids():
    stats = [_world_stats(*make_phantom(7, voxel_size=v, axcodes=a)) for v, a in GRIDS]
    cord = np.array([s[0] for s in stats])
    lesion = np.array([s[1] for s in stats])
    centroids = np.array([s[2] for s in stats])
    assert cord.min() > 1500  # a few cm of a ~7 x 10 mm cord
    assert (cord.max() - cord.min()) / cord.mean() < 0.04, cord
    assert lesion.min() > 0
    assert (lesion.max() - lesion.min()) / lesion.mean() < 0.08, lesion
    assert np.abs(centroids - centroids.mean(axis=0)).max() < 0.5, centroids


def test_random_grid_is_valid():
    for seed in range(4):
        img, lab = make_phantom(seed)
        assert nib.aff2axcodes(img.affine) in ALL_AXCODES
        assert all(20 <= n <= 200 for n in img.shape)
        assert (np.asanyarray(lab.dataobj) >= 1).sum() > 0


def test_dice():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert dice(a, b) == 1.0
    a[:2] = True
    assert dice(a, b) == 0.0
    b[:1] = True
    assert dice(a, b) == pytest.approx(2 * 4 / (8 + 4))
    assert dice(a.astype(np.uint8) * 2, a) == 1.0
