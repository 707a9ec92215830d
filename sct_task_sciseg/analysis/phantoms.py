"""Analytic phantoms for the lesion analysis: a cylindrical cord (straight or tilted in the sagittal plane) and
ellipsoid lesions aligned with it, whose volume, length, width, damage ratio and tissue bridges are known in
closed form. Coordinates are RPI voxel indices × voxel size (mm); a voxel is inside when its centre is."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff


@dataclass(frozen=True)
class Ellipsoid:
    """Lesion: centre (mm, RPI), semi-axes (a along R-L, b across the cord in the sagittal plane, c along it)."""

    centre: Tuple[float, float, float]
    semi_axes: Tuple[float, float, float]


@dataclass
class Phantom:
    shape: Tuple[int, int, int]
    zooms: Tuple[float, float, float]
    cord_radius: float
    cord_centre: Tuple[float, float]  # (x, y) mm of the cord axis at z = 0
    tilt_deg: float = 0.0  # cord axis rotated from S-I towards A-P, in the sagittal plane
    lesions: List[Ellipsoid] = field(default_factory=list)

    def _coords(self):
        return np.meshgrid(*(np.arange(n) * z for n, z in zip(self.shape, self.zooms)), indexing="ij")

    def _local(self, x, y, z):
        """(across R-L, across A-P in the sagittal plane, along the cord) of world points, from the axis."""
        t = np.deg2rad(self.tilt_deg)
        dx, dy = x - self.cord_centre[0], y - self.cord_centre[1]
        return dx, dy * np.cos(t) - z * np.sin(t), dy * np.sin(t) + z * np.cos(t)

    def cord(self) -> np.ndarray:
        u, v, _ = self._local(*self._coords())
        return u ** 2 + v ** 2 <= self.cord_radius ** 2

    def lesion(self, only: Optional[int] = None) -> np.ndarray:
        u, v, w = self._local(*self._coords())
        out = np.zeros(self.shape, dtype=bool)
        for i, e in enumerate(self.lesions):
            if only is not None and i != only:
                continue
            cu, cv, cw = self._local(*(np.asarray(c, dtype=float) for c in e.centre))
            a, b, c = e.semi_axes
            out |= ((u - cu) / a) ** 2 + ((v - cv) / b) ** 2 + ((w - cw) / c) ** 2 <= 1
        return out

    def expected(self, i: int = 0) -> Dict[str, float]:
        """Closed-form values for lesion ``i`` (wholly inside the cord, lesions on the midsagittal plane)."""
        e = self.lesions[i]
        a, b, c = e.semi_axes
        t = np.deg2rad(self.tilt_deg)
        _, cv, _ = self._local(*(np.asarray(x, dtype=float) for x in e.centre))
        r = self.cord_radius
        return {
            "volume [mm3]": 4.0 / 3.0 * np.pi * a * b * c,
            # axial slices span the ellipsoid's S-I extent; each counts pz / cos(tilt)
            "length [mm]": 2 * np.sqrt((c * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2) / np.cos(t),
            # central axial section, A-P extent × cos(tilt)
            "width [mm]": 2 * np.cos(t) / np.sqrt((np.cos(t) / b) ** 2 + (np.sin(t) / c) ** 2),
            "max_axial_damage_ratio []": (a * b) / (r * r),
            "interpolated_dorsal_bridge_width [mm]": r + float(cv) - b,
            "interpolated_ventral_bridge_width [mm]": r - float(cv) - b,
            "interpolated_total_bridge_width [mm]": 2 * r - 2 * b,
        }

    def affine(self) -> np.ndarray:
        """RPI (nibabel L, A, S) voxel → world affine."""
        return np.diag([-self.zooms[0], self.zooms[1], self.zooms[2], 1.0])

    def images(self, ornt: Optional[np.ndarray] = None, affine: Optional[np.ndarray] = None):
        """(lesion image, cord image), optionally in another axis orientation (nibabel ``ornt`` from RPI)."""
        return tuple(to_image(m, affine if affine is not None else self.affine(), ornt)
                     for m in (self.lesion(), self.cord()))


def to_image(data: np.ndarray, affine: np.ndarray, ornt: Optional[np.ndarray] = None) -> nib.Nifti1Image:
    """A uint8 NIfTI of ``data``; with ``ornt`` the same voxels stored in another axis order/direction."""
    data = np.asarray(data, dtype=np.uint8)
    if ornt is not None:
        affine = affine @ inv_ornt_aff(ornt, data.shape)
        data = apply_orientation(data, ornt)
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def all_orientations() -> List[np.ndarray]:
    """The 48 axis orientations (6 permutations × 8 flips) as nibabel ``ornt`` arrays."""
    import itertools

    out = []
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((1, -1), repeat=3):
            out.append(np.array([[perm[i], flips[i]] for i in range(3)], dtype=float))
    return out


def standard(zooms: Sequence[float] = (0.5, 0.5, 1.0), tilt_deg: float = 0.0) -> Phantom:
    """A cord of radius 4 mm (straight, or tilted by ``tilt_deg`` in the sagittal plane) with one ellipsoid
    lesion (semi-axes 1.5, 2, 6 mm) centred 0.5 mm dorsal to the axis, halfway up a 20 × 28 × 40 mm field of
    view: dorsal bridge 1.5 mm, ventral 2.5 mm."""
    shape = tuple(int(round(n / z)) for n, z in zip((20.0, 28.0, 40.0), zooms))
    z_mid, t = 20.31, np.deg2rad(tilt_deg)  # off the voxel grid: no boundary falls on voxel centres
    centre = (10.0, 14.13 - z_mid * np.tan(t))  # the axis crosses (10, 14.13) mm at z_mid
    ly = centre[1] + z_mid * np.tan(t) - 0.5 / np.cos(t)
    return Phantom(shape, tuple(zooms), 4.0, centre, tilt_deg, [Ellipsoid((centre[0], ly, z_mid), (1.5, 2.0, 6.0))])


ATLAS_INFO = """# Keyword=IndivLabels (Please DO NOT change this line)
# ID, name, file
0, WM left tract, PAM50_atlas_00.nii.gz
1, WM right tract, PAM50_atlas_01.nii.gz
30, GM left dorsal horn, PAM50_atlas_30.nii.gz
36, CSF contour, PAM50_atlas_36.nii.gz

# Keyword=CombinedLabels (Please DO NOT change this line)
# ID, name, file
50, spinal cord, 0:1,30
51, white matter, 0:1
52, gray matter, 30
"""


def atlas_phantom(folder) -> Dict[str, object]:
    """A template folder as ``sct_warp_template`` lays it out, on an 8 × 8 × 6 RPI grid of 1 mm voxels, whose
    ``sct_analyze_lesion -f`` numbers are computed by hand in the tests: a 4 × 4 cord (x, y = 2..5), tract 0
    ("left", weight 1) on x = 4..5, tract 1 ("right", 0.5) on x = 2..3, tract 30 (GM, 0.25) on y = 4..5,
    tract 36 (CSF, ignored), levels 3 on z = 0..2 and 4 on z = 3..5 (float64, as the PAM50 file). Returns the
    images: ``lesion`` (4 voxels: (4,2,2), (4,3,2), (4,3,3), (3,3,3); its centre, slice 2, keeps SCT 7.3's
    ±2-slice midsagittal window inside the image) and ``cord``, and the folder."""
    from pathlib import Path

    folder = Path(folder)
    (folder / "atlas").mkdir(parents=True, exist_ok=True)
    (folder / "template").mkdir(parents=True, exist_ok=True)
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    shape = (8, 8, 6)
    cord = np.zeros(shape, np.uint8)
    cord[2:6, 2:6, :] = 1
    tracts = {t: np.zeros(shape) for t in (0, 1, 30, 36)}
    tracts[0][4:6, 2:6, :] = 1.0
    tracts[1][2:4, 2:6, :] = 0.5
    tracts[30][2:6, 4:6, :] = 0.25
    tracts[36][1, 1, :] = 1.0
    levels = np.zeros(shape)
    levels[2:6, 2:6, 0:3] = 3.0
    levels[2:6, 2:6, 3:6] = 4.0
    for t, data in tracts.items():
        nib.save(nib.Nifti1Image(data, affine), folder / "atlas" / f"PAM50_atlas_{t:02}.nii.gz")
    (folder / "atlas" / "info_label.txt").write_text(ATLAS_INFO)
    nib.save(nib.Nifti1Image(levels, affine), folder / "template" / "PAM50_levels.nii.gz")
    lesion = np.zeros(shape, np.uint8)
    for v in ((4, 2, 2), (4, 3, 2), (4, 3, 3), (3, 3, 3)):
        lesion[v] = 1
    return {"lesion": to_image(lesion, affine), "cord": to_image(cord, affine), "folder": folder}
