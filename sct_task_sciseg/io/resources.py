"""How much memory and model-space size an input needs, judged from its header before its data are read.

Two limits, both overridable from the environment:

- ``SCISEG_MAX_MODEL_VOXELS`` (default 2**27 ≈ 134 M, about 512³): the largest image, counted in voxels at
  the model's own spacing (what nnU-Net resamples to and slides its tiles over), that a run accepts. A
  sagittal 20×384×384 scan at 2.5×0.5×0.5 mm is 7.7 M voxels at SCIsegV2's spacing; a header with 8 mm voxels
  on a 64³ grid is 560 M (hours of tiles). ``0`` removes the cap.
- ``SCISEG_CHECK_MEMORY`` (default on; ``0`` turns it off): refuse an input whose estimated peak memory is more
  than the memory available now (``MemAvailable`` on Linux; no check where the system does not say).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from ..environment import BY_NAME, get
from ..errors import InputError
from ..machine import available_memory

ENV_MAX_MODEL_VOXELS = "SCISEG_MAX_MODEL_VOXELS"
ENV_CHECK_MEMORY = "SCISEG_CHECK_MEMORY"
DEFAULT_MAX_MODEL_VOXELS = BY_NAME[ENV_MAX_MODEL_VOXELS].default
#: Bytes per voxel at the model's spacing (float32 image, half-precision logits and counts of nnU-Net's
#: sliding window, float32 logits when exporting) and per input voxel (the image, its reoriented copy and the
#: resampled region probabilities); measured peak growth with the phantom model is ≈ 25 B per model voxel.
MODEL_VOXEL_BYTES = 12
MODEL_VOXEL_BYTES_PER_HEAD = 8
INPUT_VOXEL_BYTES = 16
INPUT_VOXEL_BYTES_PER_HEAD = 8


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.0f} kB"


def max_model_voxels() -> Optional[int]:
    """The cap on voxels at the model's spacing (None: no cap), from ``SCISEG_MAX_MODEL_VOXELS``."""
    value = get(ENV_MAX_MODEL_VOXELS)
    return None if value == 0 else value


def check_memory(name: str, needed: int, what: str) -> None:
    """Refuse when ``needed`` bytes are more than the memory available now (unless turned off)."""
    if not get(ENV_CHECK_MEMORY):
        return
    free = available_memory()
    if free is not None and needed > free:
        raise InputError(f"{name}: {what} needs about {_size(needed)} of memory, {_size(free)} is available "
                         f"(check the header's dimensions; {ENV_CHECK_MEMORY}=0 skips this check)")


def model_space_shape(shape: Sequence[int], zooms: Sequence[float], spacing: Sequence[float]) -> tuple:
    """The shape nnU-Net resamples an array of ``shape`` with voxel sizes ``zooms`` to at ``spacing`` (all
    three in the same axis order)."""
    return tuple(max(1, int(round(n * z / s))) for n, z, s in zip(shape, zooms, spacing))


def check_model_space(name: str, shape_zyx: Sequence[int], zooms_zyx: Sequence[float],
                      spacing_zyx: Sequence[float], heads: int) -> None:
    """Refuse an input that is too large at the model's spacing (cap) or would not fit in memory."""
    model = model_space_shape(shape_zyx, zooms_zyx, spacing_zyx)
    n_model = math.prod(model)
    cap = max_model_voxels()
    spacing = "×".join(f"{s:.3g}" for s in spacing_zyx)
    if cap is not None and n_model > cap:
        raise InputError(
            f"{name}: at the model's {spacing} mm spacing this image is {'×'.join(map(str, model))} = "
            f"{n_model / 1e6:.0f} M voxels, more than the cap of {cap / 1e6:.0f} M (voxel size "
            f"{'×'.join(f'{z:.3g}' for z in zooms_zyx)} mm: check the header; {ENV_MAX_MODEL_VOXELS}=0 lifts "
            "the cap)")
    n_input = math.prod(int(n) for n in shape_zyx)
    needed = (n_model * (MODEL_VOXEL_BYTES + MODEL_VOXEL_BYTES_PER_HEAD * heads)
              + n_input * (INPUT_VOXEL_BYTES + INPUT_VOXEL_BYTES_PER_HEAD * heads))
    check_memory(name, needed, f"segmenting it ({'×'.join(map(str, model))} voxels at the model's spacing)")
