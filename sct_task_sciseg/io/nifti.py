"""NIfTI input validation and atomic NIfTI output.

Every problem with an input becomes one :class:`InputError` line naming the file. :func:`read_header` checks
everything the header says (format, dimensions, voxel size, orientation, whether the file can hold the data
it claims, the memory needed to read it) before a byte of image data is read; :func:`load_image` then reads
and checks the data. Images are written with :func:`sct_task_sciseg.io.atomic.atomic_write`, so no
half-written file ever exists.
"""
from __future__ import annotations

import contextlib
import gzip
import logging
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import nibabel as nib
import numpy as np

from ..errors import InputError
from .atomic import atomic_write
from .intensity import normalisation_problem
from .resources import ENV_MAX_MODEL_VOXELS, check_memory, max_model_voxels

MAX_VOXELS = 2_000_000_000  # header dims beyond this are not a real scan
MAX_DIM = 16384
GZIP_LEVEL = 1  # nibabel's own level for .nii.gz
HEADER_SIZES = {348: nib.Nifti1Header, 540: nib.Nifti2Header}  # sizeof_hdr, in either byte order
DEFLATE_MAX_RATIO = 1032  # deflate never expands more than ~1032:1, so a .gz file bounds its content


@dataclass
class Header:
    """What an input's header says, checked, before its data are read."""

    path: Path
    image: nib.Nifti1Image  # data not read yet; its affine is the header's usable one
    shape: Tuple[int, int, int]
    zooms: Tuple[float, float, float]


def read_header(path: Union[str, Path]) -> Header:
    """Open a NIfTI file and check its header (not its data), or raise InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a NIfTI file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable (permission denied)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    header_class = _header_class(path)
    if header_class is not None:
        _check_raw_pixdim(path, header_class)
    try:
        with _quiet_nibabel():
            img = nib.load(str(path))
    except nib.filebasedimages.ImageFileError:
        raise InputError(f"{path}: not a NIfTI image") from None
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise InputError(f"{path}: unreadable or corrupt header ({exc})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(f"{path}: a {type(img).__name__} image, not NIfTI")
    shape, zooms = _check_header(img, str(path))
    _check_data_size(path, img, shape)
    hdr, affine = _usable_header(img, str(path))
    if hdr is not img.header:  # one of sform/qform is unusable: the image reads with the other one
        img = type(img)(img.dataobj, affine, hdr)
    return Header(path, img, shape, zooms)


def load_image(path: Union[str, Path]) -> nib.Nifti1Image:
    """Load a 3D NIfTI (a singleton 4th dimension is dropped) and validate it, or raise InputError; the
    image keeps its file name (``get_filename()``) for later messages."""
    img = validate_image(read_header(path).image, str(path))
    img.set_filename(str(path))
    return img


@contextlib.contextmanager
def _quiet_nibabel():
    """nibabel logs header fixes to stderr; the one line we print says what matters."""
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _header_class(path: Path):
    """NIfTI-1 or NIfTI-2 from ``sizeof_hdr`` (little- or big-endian); None when it is neither."""
    try:
        with nib.openers.ImageOpener(str(path)) as f:
            raw = f.read(4)
    except Exception:  # unreadable: nib.load says why
        return None
    if len(raw) < 4:
        return None
    for order in ("little", "big"):
        found = HEADER_SIZES.get(int.from_bytes(raw, order))
        if found is not None:
            return found
    return None


def _check_raw_pixdim(path: Path, header_class) -> None:
    """nibabel silently turns a zero voxel size into 1 mm on load: check the header as written."""
    try:
        with nib.openers.ImageOpener(str(path)) as f:
            raw = header_class.from_fileobj(f, check=False)
    except Exception:  # not a NIfTI, truncated, ...: nib.load gives the precise reason
        return
    pixdim = np.asarray(raw["pixdim"][1:4], dtype=float)
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim <= 0):
        raise InputError(f"{path}: invalid voxel size {tuple(float(v) for v in pixdim)} mm "
                         "(zero, negative or NaN)")


def _check_data_size(path: Path, img, shape) -> None:
    """Refuse a file that cannot hold the data its header claims, or whose data would not fit in memory."""
    dtype = img.get_data_dtype()
    n = int(np.prod(shape, dtype=np.int64))
    claimed = n * dtype.itemsize
    size = path.stat().st_size
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    room = size * DEFLATE_MAX_RATIO if compressed else size - int(img.header["vox_offset"])
    if claimed > room:
        dims = "×".join(map(str, shape))
        raise InputError(f"{path}: truncated or corrupt image data (the header claims {dims} {dtype} voxels, "
                         f"{claimed / 1e6:.1f} MB, more than this {size / 1e6:.2g} MB file can hold)")
    cap = max_model_voxels()
    if cap is not None and n > cap:
        raise InputError(f"{path}: the header claims {'×'.join(map(str, shape))} = {n / 1e6:.0f} M voxels, more "
                         f"than the cap of {cap / 1e6:.0f} M ({ENV_MAX_MODEL_VOXELS}=0 lifts the cap)")
    check_memory(str(path), n * (dtype.itemsize + 4), "reading it")


def _form(hdr, which: str) -> Optional[np.ndarray]:
    """The header's sform or qform when its code is set and it is a usable (finite, invertible) affine."""
    if int(hdr[f"{which}_code"]) <= 0:
        return None
    try:
        affine = hdr.get_sform() if which == "sform" else hdr.get_qform()
    except Exception:  # noqa: BLE001 - nibabel raises on an impossible quaternion
        return None
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        return None
    return affine


def _usable_header(img, name: str):
    """The header with its usable orientation: the sform (as SCT and nibabel prefer it) when valid, else a
    valid qform; the unusable one of the two is kept with code 0, so that it is never read."""
    hdr = img.header
    sform, qform = _form(hdr, "sform"), _form(hdr, "qform")
    if sform is None and qform is None:
        if int(hdr["qform_code"]) <= 0 and int(hdr["sform_code"]) <= 0:
            raise InputError(f"{name}: no orientation in header (sform and qform codes are 0); "
                             "the cord direction is unknown")
        raise InputError(f"{name}: singular or non-finite affine (neither the sform nor the qform is usable)")
    if (sform is None) == (int(hdr["sform_code"]) <= 0) and (qform is None) == (int(hdr["qform_code"]) <= 0):
        return hdr, img.affine
    hdr = hdr.copy()
    if sform is None:
        hdr.set_sform(qform, code=0)
    if qform is None:
        hdr.set_qform(sform, code=0)
    return hdr, hdr.get_best_affine()


def _check_header(img, name: str):
    """(3D shape, voxel sizes) after checking dimensions, voxel sizes, orientation and voxel type."""
    shape = tuple(int(s) for s in img.shape)
    if any(s > MAX_DIM for s in shape) or int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
        raise InputError(f"{name}: absurd header dimensions {shape}")
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) < 3:
        raise InputError(f"{name}: {len(shape)}D image {shape}; a 3D volume is needed")
    if len(shape) > 3:
        raise InputError(f"{name}: {len(shape)}D image {shape}; give one 3D volume (split it with fslsplit)")
    if min(shape) < 1:
        raise InputError(f"{name}: empty image dimensions {shape}")
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise InputError(f"{name}: invalid voxel size {tuple(zooms)} mm (zero, negative or NaN)")
    _usable_header(img, name)
    dtype = img.get_data_dtype()
    if dtype.kind not in "iuf" or dtype.names is not None:
        raise InputError(f"{name}: unsupported voxel type {dtype}; a real-valued image is needed")
    return shape, tuple(float(z) for z in zooms)


def validate_image(img: nib.Nifti1Image, name: str) -> nib.Nifti1Image:
    """Check dimensions, spacing, orientation and values; returns a 3D float32 image on the same grid."""
    shape, _ = _check_header(img, name)
    hdr, affine = _usable_header(img, name)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape)
    except (EOFError, OSError, zlib.error, ValueError) as exc:
        raise InputError(f"{name}: truncated or corrupt image data ({exc})") from None
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise InputError(f"{name}: {bad} voxels are NaN or infinite")
    if not np.any(data):
        raise InputError(f"{name}: all voxels are 0 (empty image)")
    if float(data.max()) == float(data.min()):
        raise InputError(f"{name}: constant image (every voxel is {float(data.max())})")
    problem = normalisation_problem(data)
    if problem:
        raise InputError(f"{name}: {problem}")
    out = nib.Nifti1Image(data, affine, hdr)
    out.set_data_dtype(np.float32)
    return out


def from_array(data: np.ndarray, affine: np.ndarray, name: str = "<array>") -> nib.Nifti1Image:
    """A validated image from an array + affine (both qform and sform set to the affine)."""
    img = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=float))
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return validate_image(img, name)


def mask_image(mask: np.ndarray, reference: nib.Nifti1Image) -> nib.Nifti1Image:
    """A uint8 0/1 image carrying the reference's affine, qform/sform codes and units."""
    hdr = reference.header.copy()
    hdr.set_data_dtype(np.uint8)
    out = nib.Nifti1Image(mask.astype(np.uint8), reference.affine, hdr)
    out.set_qform(reference.header.get_qform(), code=int(reference.header["qform_code"]))
    out.set_sform(reference.header.get_sform(), code=int(reference.header["sform_code"]))
    out.header.set_xyzt_units(*reference.header.get_xyzt_units())
    out.header["scl_slope"], out.header["scl_inter"] = 1.0, 0.0
    out.header["cal_min"], out.header["cal_max"] = 0, 1
    return out


def probability_image(prob: np.ndarray, reference: nib.Nifti1Image) -> nib.Nifti1Image:
    """A float32 [0, 1] image carrying the reference's affine, qform/sform codes and units."""
    out = mask_image(np.zeros(prob.shape, dtype=np.uint8), reference)
    out = nib.Nifti1Image(np.asarray(prob, dtype=np.float32), out.affine, out.header)
    out.header.set_data_dtype(np.float32)
    out.header["cal_min"], out.header["cal_max"] = 0.0, 1.0
    return out


def image_content(img: nib.Nifti1Image, path: Union[str, Path]):
    """What :func:`~sct_task_sciseg.io.atomic.atomic_write` writes for ``img`` at ``path`` (``.nii`` bytes, or a
    writer of ``.nii.gz``)."""
    data = img.to_bytes()
    if not str(path).endswith(".gz"):
        return data

    def write(fh):
        with gzip.GzipFile(filename="", mode="wb", fileobj=fh, compresslevel=GZIP_LEVEL, mtime=0) as gz:
            gz.write(data)
    return write


def save_image(img: nib.Nifti1Image, path: Union[str, Path]) -> Path:
    """Write ``img`` to ``path`` (``.nii`` or ``.nii.gz``) atomically."""
    return atomic_write(path, image_content(img, path))
