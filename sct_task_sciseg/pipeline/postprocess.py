"""Class-aware post-processing of a label map, driven by the task's :class:`~sct_task_sciseg.tasks.LabelScheme`.

Unlike ``sct_deepseg``, which applies each flag to every output (so ``-largest 1`` also deletes every lesion
but the biggest), each operation acts on the output where it makes sense:

- ``largest``: keep the largest connected component of the *parent* output (SCIseg: the cord, lesion
  included); finding voxels outside it go too.
- ``fill_holes``: fill enclosed holes of the *parent* (filled voxels get the parent's own label).
- ``remove_small``: drop components of the *finding* (SCIseg: lesion) below a size (``"5mm3"`` / ``"10vox"``);
  ``"<output>:200mm3"`` (e.g. ``sc:``) acts on another output instead. Removed finding voxels stay parent.
- ``thr``: threshold on the region probabilities instead of nnU-Net's 0.5 (region-based models).

All are off by default, as in SCT for this task.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ..inference.settings import check_threshold
from ..io.components import component_sizes, label_components
from ..errors import SettingError
from ..tasks import LabelScheme

_SIZE = re.compile(r"^(?:([a-z0-9_]+):)?([0-9]*\.?[0-9]+)(mm3|vox)?$")


@dataclass(frozen=True)
class PostProcessing:
    thr: Optional[float] = None
    largest: bool = False
    fill_holes: bool = False
    remove_small: Tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "remove_small", tuple(self.remove_small))
        if self.thr is not None:
            check_threshold(float(self.thr))

    def as_dict(self) -> dict:
        return {"thr": self.thr, "largest": self.largest, "fill_holes": self.fill_holes,
                "remove_small": list(self.remove_small)}


def parse_size(spec: str, scheme: LabelScheme) -> Tuple[str, float, str]:
    """``"lesion:5mm3"`` → ``("lesion", 5.0, "mm3")``; the output defaults to the scheme's finding (else its
    parent), the unit to voxels."""
    m = _SIZE.match(spec.strip().lower())
    names = scheme.names
    if not m or (m.group(1) and m.group(1) not in names):
        example = f"5mm3, 10vox, {scheme.parent}:200mm3"
        raise SettingError(f"invalid size {spec!r}: use e.g. {example} (outputs: {', '.join(names)})")
    return m.group(1) or scheme.finding or scheme.parent, float(m.group(2)), m.group(3) or "vox"


def labels_from_probabilities(probs: np.ndarray, thr: float, regions_class_order: Sequence[int]) -> np.ndarray:
    """Region probabilities → label map, like nnU-Net with a custom threshold: region ``i`` ≥ ``thr`` gets
    label ``regions_class_order[i]``, later regions over earlier ones."""
    labels = np.zeros(probs.shape[1:], dtype=np.uint8)
    for channel, label in enumerate(regions_class_order):
        labels[probs[channel] >= thr] = int(label)
    return labels


def soft_maps(probs: np.ndarray, regions_class_order: Sequence[int], outputs: Sequence) -> dict:
    """Output name → float32 probability map in [0, 1], consistent with :func:`labels_from_probabilities`:
    ``soft >= thr`` is exactly the output's mask at threshold ``thr`` (before post-processing).

    An output's map is the maximum over the regions whose label belongs to it (SCIseg: cord = max(cord region,
    lesion region), since a lesion voxel is cord; lesion = the lesion region). This holds for nested schemes,
    where no later region takes a voxel out of an output; other schemes are refused.
    """
    order = [int(c) for c in regions_class_order]
    out = {}
    for o in outputs:
        inside = [i for i, c in enumerate(order) if c in o.labels]
        if not inside:
            raise ValueError(f"output {o.name!r}: no region of the model gives its labels {o.labels}")
        if any(order[j] not in o.labels for j in range(min(inside), len(order))):
            raise ValueError(f"output {o.name!r}: a later region overrides it; no consistent probability map")
        out[o.name] = np.max(np.asarray(probs, dtype=np.float32)[inside], axis=0)
    return out


#: Probabilities in this open band count as uncertain (the mask's own threshold, 0.5, lies in the middle).
UNCERTAIN_BAND = (0.2, 0.8)


def uncertain_shares(soft: dict, band: Tuple[float, float] = UNCERTAIN_BAND) -> dict:
    """Output name → voxels with a probability inside ``band``, as a share of the output's voxels at 0.5
    (0.0 for an empty output): the model's doubt, from the probabilities of the same inference."""
    lo, hi = band
    out = {}
    for name, p in soft.items():
        p = np.asarray(p, dtype=np.float32)
        n_mask = int(np.count_nonzero(p >= 0.5))
        n_band = int(np.count_nonzero((p > lo) & (p < hi)))
        out[name] = round(n_band / n_mask, 4) if n_mask else 0.0
    return out


def apply(labels: np.ndarray, pp: PostProcessing, voxel_volume_mm3: float,
          scheme: LabelScheme) -> np.ndarray:
    """Apply ``pp`` to a label map (in any orientation: operations are orientation-free)."""
    from scipy import ndimage

    out = labels.astype(np.uint8, copy=True)
    parent = np.isin(out, scheme.output(scheme.parent).labels)
    if pp.largest and parent.any():
        comp, n = label_components(parent)
        if n > 1:
            keep = int(np.argmax(component_sizes(comp, n))) + 1
            out[(comp != 0) & (comp != keep)] = 0
    if pp.fill_holes:
        filled = ndimage.binary_fill_holes(np.isin(out, scheme.output(scheme.parent).labels))
        out[filled & (out == 0)] = scheme.base_label
    for spec in pp.remove_small:
        name, size, unit = parse_size(spec, scheme)
        min_vox = size / voxel_volume_mm3 if unit == "mm3" else size
        comp, n = label_components(np.isin(out, scheme.output(name).labels))
        if n:
            sizes = np.concatenate([[0], component_sizes(comp, n)])
            small = np.isin(comp, np.nonzero(sizes < min_vox)[0]) & (comp != 0)
            out[small] = 0 if name == scheme.parent else scheme.base_label
    return out


def split(labels: np.ndarray, outputs: Sequence) -> dict:
    """Output name → uint8 0/1 mask of the voxels whose label is in that output's labels."""
    return {o.name: np.isin(labels, o.labels).astype(np.uint8) for o in outputs}
