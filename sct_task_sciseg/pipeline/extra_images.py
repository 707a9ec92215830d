"""What each kind of extra image (:data:`sct_task_sciseg.io.outputs.IMAGE_KINDS`: its flag and file names) is
made of: its images, computed from the one inference of a scan, and what their JSON sidecars say.

A new kind of image written beside each mask is its row in ``IMAGE_KINDS`` and its :class:`Producer` here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import nibabel as nib
import numpy as np

from ..io.nifti import probability_image
from ..io.outputs import IMAGE_KINDS, ImageKind


@dataclass(frozen=True)
class Inference:
    """What a producer may use: the input image, the label map after post-processing, each output's mask,
    and each output's probability map before post-processing (only when a producer needs probabilities)."""

    image: nib.Nifti1Image
    labels: np.ndarray
    masks: Dict[str, np.ndarray]
    probabilities: Dict[str, np.ndarray]


@dataclass(frozen=True)
class Producer:
    """``images``: output name → image on the input grid; ``sidecar``: the sidecar's fields after ``Output``
    and ``Labels`` for one task output."""

    needs_probabilities: bool
    images: Callable[[Inference], Dict[str, nib.Nifti1Image]]
    sidecar: Callable[[object], Dict[str, object]]


def _probability_sidecar(output) -> Dict[str, object]:
    return {"Type": "probability",
            "Description": f"probability of: {output.description or output.name} (float32 in [0, 1], before "
                           f"post-processing; the mask at threshold t is soft >= t)"}


PRODUCERS: Dict[str, Producer] = {
    "soft": Producer(needs_probabilities=True,
                     images=lambda inf: {n: probability_image(p, inf.image) for n, p in inf.probabilities.items()},
                     sidecar=_probability_sidecar),
}
assert set(PRODUCERS) == set(IMAGE_KINDS), "every kind of extra image needs its producer"


def needs_probabilities(kinds: Sequence[str]) -> bool:
    return any(PRODUCERS[k].needs_probabilities for k in kinds)


def extra_images(kinds: Sequence[str], inference: Inference) -> Dict[str, nib.Nifti1Image]:
    """The images of ``kinds`` by key (``<output><kind's key>``, as :class:`~sct_task_sciseg.io.outputs.ScanOutputs`
    names them)."""
    return {name + IMAGE_KINDS[k].key: image for k in kinds for name, image in PRODUCERS[k].images(inference).items()}


def sidecar_fields(kind: Optional[ImageKind], output) -> Dict[str, object]:
    """The sidecar fields of task output ``output``'s image of ``kind`` (None: its mask, described)."""
    return PRODUCERS[kind.flag].sidecar(output) if kind else {"Description": output.description}
