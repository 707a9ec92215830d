"""NIfTI input validation and atomic NIfTI output.

Every problem with an input becomes one :class:`InputError` line naming the file; images are written with
:func:`sct_task_sciseg.io.atomic.atomic_write`, so no half-written file ever exists.
"""
from __future__ import annotations

import contextlib
import gzip
import logging
import os
import warnings
import zlib
from pathlib import Path
from typing import Union

import nibabel as nib
import numpy as np

from ..errors import InputError
from .atomic import atomic_write

MAX_VOXELS = 2_000_000_000  # header dims beyond this are not a real scan
MAX_DIM = 16384
GZIP_LEVEL = 1  # nibabel's own level for .nii.gz


def load_image(path: Union[str, Path]) -> nib.Nifti1Image:
    """Load a 3D NIfTI (a singleton 4th dimension is dropped) and validate it, or raise InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a NIfTI file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable (permission denied)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    header_class = nib.Nifti2Header if _is_nifti2(path) else nib.Nifti1Header
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
    return validate_image(img, str(path))


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


def _is_nifti2(path: Path) -> bool:
    try:
        with nib.openers.ImageOpener(str(path)) as f:
            return len(f.read(4)) == 4 and f.seek(0) == 0 and int.from_bytes(f.read(4), "little") == 540
    except Exception:  # unreadable: nib.load says why
        return False


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


def validate_image(img: nib.Nifti1Image, name: str) -> nib.Nifti1Image:
    """Check dimensions, spacing, orientation and values; returns a 3D float32 image on the same grid."""
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
    hdr = img.header
    zooms = np.asarray(hdr.get_zooms()[:3], dtype=float)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise InputError(f"{name}: invalid voxel size {tuple(zooms)} mm (zero, negative or NaN)")
    qcode, scode = int(hdr["qform_code"]), int(hdr["sform_code"])
    if qcode == 0 and scode == 0:
        raise InputError(f"{name}: no orientation in header (sform and qform codes are 0); "
                         "the cord direction is unknown")
    affine = img.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(f"{name}: singular or non-finite affine")
    dtype = img.get_data_dtype()
    if dtype.kind not in "iuf" or dtype.names is not None:
        raise InputError(f"{name}: unsupported voxel type {dtype}; a real-valued image is needed")
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


def save_image(img: nib.Nifti1Image, path: Union[str, Path]) -> Path:
    """Write ``img`` to ``path`` (``.nii`` or ``.nii.gz``) atomically."""
    path = Path(path)
    data = img.to_bytes()
    if path.name.endswith(".gz"):
        def write(fh):
            with gzip.GzipFile(filename="", mode="wb", fileobj=fh, compresslevel=GZIP_LEVEL, mtime=0) as gz:
                gz.write(data)
        return atomic_write(path, write)
    return atomic_write(path, data)
