"""Synthetic T2w spinal cord phantoms with known cord and lesion masks (numpy, scipy, nibabel only).

The anatomy is defined analytically in world millimetres (RAS+), so the same ``seed`` gives the same object
whatever the voxel grid: any of the 48 axis-aligned orientations and any voxel size sample one continuous
scene. The scene is a curved spinal cord (elliptical cross-section, intermediate signal) in bright CSF,
surrounded by textured vertebrae, discs and muscle, with hyperintense intramedullary lesions (always inside
the cord). The image gets a partial-volume blur, a smooth bias field, Rician noise and a random gain.

Labels: 0 background, 1 cord, 2 lesion (cord mask = label >= 1, as in SCIseg's label map).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt
from scipy.ndimage import gaussian_filter

__all__ = ["ALL_AXCODES", "PhantomParams", "dice", "make_phantom", "phantom_params", "render"]

_PAIRS = (("L", "R"), ("P", "A"), ("I", "S"))

#: The 48 axis-aligned orientations, as nibabel axis codes (the side each voxel axis runs *towards*).
ALL_AXCODES: Tuple[Tuple[str, str, str], ...] = tuple(
    tuple(_PAIRS[w][s] for w, s in zip(perm, signs))
    for perm in itertools.permutations(range(3))
    for signs in itertools.product((0, 1), repeat=3)
)


@dataclass(frozen=True)
class Lesion:
    z: float  # centre along the cord, mm, relative to the scene centre
    offset: Tuple[float, float]  # in-plane offset from the centreline (x, y), mm
    radii: Tuple[float, float, float]  # semi-axes (x, y, z), mm
    contrast: float  # signal relative to CSF


@dataclass(frozen=True)
class PhantomParams:
    """Everything that defines the object in world space (independent of the voxel grid)."""

    center: Tuple[float, float, float]  # world position of the scene centre, mm (RAS+)
    fov: Tuple[float, float, float]  # field of view along x (L-R), y (P-A), z (I-S), mm
    cord_radii: Tuple[float, float]  # cord semi-axes (x, y), mm
    csf_margin: Tuple[float, float]  # CSF thickness beyond the cord (x, y), mm
    csf_offset: Tuple[float, float]  # canal centre relative to the cord centre (x, y), mm
    curve: Tuple[float, ...]  # centreline: x amp, x period, x phase, y amp, y period, y phase, y quadratic
    enlargement: Tuple[float, float, float]  # cord radius modulation: amplitude, period, phase
    vertebra: Tuple[float, float, float, float]  # period, disc height, phase, body depth (mm)
    intensities: Tuple[float, ...]  # cord, csf, vertebra, disc, muscle, fat (relative)
    texture: Tuple[Tuple[float, float, float, float, float], ...]  # plane waves: kx, ky, kz, phase, amplitude
    bias: Tuple[float, ...]  # bias-field coefficients (linear x, y, z, quadratic x, y, z)
    noise: float  # Rician noise sigma relative to CSF
    gain: float  # global intensity scale
    lesions: Tuple[Lesion, ...]


def phantom_params(seed: int, lesion: bool = True) -> PhantomParams:
    """Draw the world-space object for ``seed`` (the grid does not influence it)."""
    rng = np.random.default_rng([int(seed), 1])
    fov = (rng.uniform(40, 60), rng.uniform(40, 60), rng.uniform(50, 80))
    center = (rng.uniform(-15, 15), rng.uniform(-15, 15), rng.uniform(-250, 0))
    cord = (rng.uniform(4.3, 5.6), rng.uniform(3.0, 4.0))
    csf = (rng.uniform(2.2, 4.0), rng.uniform(1.8, 3.0))
    csf_off = (rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.6))
    curve = (rng.uniform(0, 2.0), rng.uniform(60, 140), rng.uniform(0, 2 * np.pi),
             rng.uniform(1.0, 5.0), rng.uniform(80, 180), rng.uniform(0, 2 * np.pi),
             rng.uniform(-0.004, 0.004))
    enlargement = (rng.uniform(0, 0.12), rng.uniform(60, 120), rng.uniform(0, 2 * np.pi))
    vertebra = (rng.uniform(14, 19), rng.uniform(3.0, 5.0), rng.uniform(0, 1), rng.uniform(14, 18))
    csf_i = 1.0
    intensities = (rng.uniform(0.30, 0.50),  # cord
                   csf_i,  # csf
                   rng.uniform(0.15, 0.35),  # vertebral body
                   rng.uniform(0.35, 0.65),  # disc
                   rng.uniform(0.12, 0.30),  # muscle
                   rng.uniform(0.45, 0.80))  # fat
    waves = []
    for _ in range(14):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / rng.uniform(2.0, 12.0)
        waves.append((*(direction * k), rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.0)))
    bias = tuple(rng.uniform(-0.25, 0.25, size=3)) + tuple(rng.uniform(-0.15, 0.15, size=3))
    noise = rng.uniform(0.015, 0.06)
    gain = float(np.exp(rng.uniform(np.log(150), np.log(3000))))
    lesions: List[Lesion] = []
    if lesion:
        n = 1 if rng.uniform() < 0.7 else 2
        for _ in range(n):
            radii = (rng.uniform(1.6, 3.2), rng.uniform(1.3, 2.6), rng.uniform(3.0, 9.0))
            lim = (max(cord[0] - radii[0], 0.2) * 0.6, max(cord[1] - radii[1], 0.2) * 0.6)
            lesions.append(Lesion(
                z=rng.uniform(-0.3, 0.3) * fov[2],
                offset=(rng.uniform(-lim[0], lim[0]), rng.uniform(-lim[1], lim[1])),
                radii=radii,
                contrast=rng.uniform(0.7, 1.1),
            ))
    return PhantomParams(center, fov, cord, csf, csf_off, curve, enlargement, vertebra, intensities,
                         tuple(waves), bias, noise, gain, tuple(lesions))


def _sigmoid(d: np.ndarray, width: float = 0.25) -> np.ndarray:
    """Soft inside-mask from a signed distance (negative inside)."""
    return 0.5 * (1.0 - np.tanh(d / (2 * width)))


def _ellipse_distance(dx: np.ndarray, dy: np.ndarray, ax, ay) -> Tuple[np.ndarray, np.ndarray]:
    """Normalised radius r (1 on the boundary) and an approximate signed distance in mm."""
    r = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2)
    rho = np.sqrt(dx ** 2 + dy ** 2)
    d = np.where(r > 1e-6, rho * (1.0 - 1.0 / np.maximum(r, 1e-6)), -np.minimum(ax, ay))
    return r, d


def _scene(p: PhantomParams, x: np.ndarray, y: np.ndarray, z: np.ndarray):
    """Noise-free intensity and hard labels at world points given relative to the scene centre (mm)."""
    ax_, px, phx, ay_, py, phy, quad = p.curve
    xc = ax_ * np.sin(2 * np.pi * z / px + phx)
    yc = ay_ * np.sin(2 * np.pi * z / py + phy) + quad * z ** 2
    dx, dy = x - xc, y - yc
    amp, per, ph = p.enlargement
    scale = 1.0 + amp * np.sin(2 * np.pi * z / per + ph)
    cord_ax, cord_ay = p.cord_radii[0] * scale, p.cord_radii[1] * scale
    r_cord, d_cord = _ellipse_distance(dx, dy, cord_ax, cord_ay)
    cx, cy = dx - p.csf_offset[0], dy - p.csf_offset[1]
    canal_ax, canal_ay = cord_ax + p.csf_margin[0], cord_ay + p.csf_margin[1]
    _, d_canal = _ellipse_distance(cx, cy, canal_ax, canal_ay)

    i_cord, i_csf, i_vert, i_disc, i_muscle, i_fat = p.intensities
    tex = np.zeros_like(x)
    for kx, ky, kz, phase, a in p.texture:
        tex += a * np.cos(kx * x + ky * y + kz * z + phase)
    tex /= np.sqrt(0.5 * sum(w[4] ** 2 for w in p.texture)) + 1e-6  # ~unit variance

    # Tissue outside the canal: vertebral bodies and discs anteriorly, fat and muscle elsewhere.
    period, disc_h, phase, depth = p.vertebra
    zz = np.mod(z / period + phase, 1.0) * period
    in_disc = _sigmoid(np.abs(zz - period / 2) - disc_h / 2, 0.4)
    front = cy - canal_ay - 1.0  # mm in front of the canal
    body = _sigmoid(-front, 0.5) * _sigmoid(front - depth, 0.5) * _sigmoid(np.abs(cx) - 9.0, 0.6)
    vert = i_vert * (1 + 0.25 * tex) * (1 - in_disc) + i_disc * (1 + 0.1 * tex) * in_disc
    fatness = _sigmoid(-(tex - 1.0), 0.3)  # bright fat islands where the texture peaks
    soft = i_muscle * (1 + 0.35 * np.sin(0.9 * tex * np.pi)) * (1 - fatness) + i_fat * fatness
    ring = _sigmoid(np.abs(d_canal - 1.2) - 0.8, 0.3)  # dark dura / bone rim just outside the CSF
    outside = body * vert + (1 - body) * soft
    outside = outside * (1 - 0.7 * ring)

    canal = _sigmoid(d_canal)
    cord_soft = _sigmoid(d_cord)
    img = outside * (1 - canal) + canal * (i_csf * (1 + 0.03 * tex))
    img = img * (1 - cord_soft) + cord_soft * (i_cord * (1 + 0.05 * tex))

    cord = r_cord <= 1.0
    lesion = np.zeros_like(cord)
    for les in p.lesions:
        lx = (dx - les.offset[0]) / les.radii[0]
        ly = (dy - les.offset[1]) / les.radii[1]
        lz = (z - les.z) / les.radii[2]
        rl = np.sqrt(lx ** 2 + ly ** 2 + lz ** 2)
        d_les = (rl - 1.0) * min(les.radii)
        w = _sigmoid(d_les, 0.3) * cord_soft
        core = 1.0 + 0.15 * np.clip(1 - rl, 0, 1)  # slightly brighter core
        img = img * (1 - w) + w * (les.contrast * i_csf * core * (1 + 0.05 * tex))
        lesion |= (rl <= 1.0)
    lesion &= cord
    labels = cord.astype(np.uint8)
    labels[lesion] = 2
    return img, labels


def _grid_affine(p: PhantomParams, voxel_size: Sequence[float], axcodes: Sequence[str]):
    """Shape and affine of a grid covering the scene's field of view with the given voxel axes."""
    ornt = axcodes2ornt(tuple(axcodes), _PAIRS)
    if np.isnan(ornt).any():
        raise ValueError(f"bad axis codes {axcodes!r}")
    shape, affine = [], np.eye(4)
    for i, (w, sign) in enumerate(ornt.astype(int)):
        n = max(int(round(p.fov[w] / voxel_size[i])), 2)
        shape.append(n)
        extent = n * voxel_size[i]
        lo = p.center[w] - extent / 2
        affine[:3, i] = 0.0
        affine[w, i] = sign * voxel_size[i]
        affine[w, 3] = lo + 0.5 * voxel_size[i] if sign > 0 else lo + extent - 0.5 * voxel_size[i]
    return tuple(shape), affine


def _random_grid(seed: int, voxel_size, axcodes):
    rng = np.random.default_rng([int(seed), 2])
    if axcodes is None:
        axcodes = ALL_AXCODES[int(rng.integers(len(ALL_AXCODES)))]
    if voxel_size is None:
        ornt = axcodes2ornt(tuple(axcodes), _PAIRS).astype(int)
        kind = rng.choice(["iso", "axial", "sagittal", "coronal", "any"], p=[0.25, 0.25, 0.25, 0.1, 0.15])
        inplane = rng.uniform(0.5, 1.0)
        world = [inplane] * 3
        if kind == "iso":
            world = [rng.uniform(0.6, 1.1)] * 3
        elif kind == "axial":
            world[2] = rng.uniform(1.5, 4.0)
        elif kind == "sagittal":
            world[0] = rng.uniform(1.0, 3.0)
        elif kind == "coronal":
            world[1] = rng.uniform(1.0, 2.5)
        else:
            world = list(rng.uniform(0.5, 1.5, size=3))
        voxel_size = tuple(float(world[w]) for w, _ in ornt)
    return tuple(float(v) for v in voxel_size), tuple(axcodes), rng


def render(p: PhantomParams, shape: Sequence[int], affine: np.ndarray, *, noise_seed: int = 0,
           blur: bool = True, noise: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Image (float32) and labels (uint8) of the scene ``p`` sampled on any voxel grid."""
    shape = tuple(int(n) for n in shape)
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    xyz = affine[:3, :3].astype(np.float32) @ ijk + affine[:3, 3:4].astype(np.float32)
    x, y, z = (xyz[k] - np.float32(p.center[k]) for k in range(3))
    img, labels = _scene(p, x, y, z)
    img = img.reshape(shape).astype(np.float32)
    labels = labels.reshape(shape)
    if blur:  # partial volume / point-spread function: about half a voxel along each axis
        img = gaussian_filter(img, sigma=0.42, mode="nearest")
    half = [s / 2 for s in p.fov]
    bx, by, bz = (np.clip(v / h, -1.5, 1.5) for v, h in zip((x, y, z), half))
    b = p.bias
    field = np.exp(b[0] * bx + b[1] * by + b[2] * bz + b[3] * bx ** 2 + b[4] * by ** 2 + b[5] * bz ** 2)
    img = img * field.reshape(shape).astype(np.float32)
    if noise:
        rng = np.random.default_rng([int(noise_seed), 3])
        n1 = rng.normal(0, p.noise, size=shape).astype(np.float32)
        n2 = rng.normal(0, p.noise, size=shape).astype(np.float32)
        img = np.sqrt((img + n1) ** 2 + n2 ** 2)
    return (img * np.float32(p.gain)).astype(np.float32), labels


def make_phantom(seed: int, *, voxel_size: Optional[Sequence[float]] = None,
                 axcodes: Optional[Sequence[str]] = None, lesion: bool = True
                 ) -> Tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """A synthetic T2w volume and its label map (0 background, 1 cord, 2 lesion).

    ``voxel_size`` is given along the array axes (mm); ``axcodes`` are nibabel axis codes such as
    ``('P', 'S', 'R')``. Either left as None is drawn from ``seed`` (one of the 48 orientations; isotropic,
    axial, sagittal, coronal or arbitrary voxels). The object itself depends on ``seed`` (and ``lesion``) only,
    so the same seed in two grids shows the same anatomy at the same world positions.
    """
    p = phantom_params(seed, lesion=lesion)
    voxel_size, axcodes, _ = _random_grid(seed, voxel_size, axcodes)
    if len(voxel_size) != 3 or min(voxel_size) <= 0:
        raise ValueError(f"voxel_size must be three positive numbers, got {voxel_size!r}")
    shape, affine = _grid_affine(p, voxel_size, axcodes)
    img, labels = render(p, shape, affine, noise_seed=seed)
    out = []
    for data in (img, labels):
        nii = nib.Nifti1Image(data, affine)
        nii.set_qform(affine, code=1)
        nii.set_sform(affine, code=1)
        nii.header.set_xyzt_units("mm", "sec")
        out.append(nii)
    return out[0], out[1]


def dice(a, b) -> float:
    """Dice coefficient of two masks (anything non-zero is foreground); 1.0 when both are empty."""
    a = np.asarray(a) != 0
    b = np.asarray(b) != 0
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total
