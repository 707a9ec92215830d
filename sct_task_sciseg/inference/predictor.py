"""nnU-Net's predictor with this package's per-call levers: region of interest, air-tile skipping, large tiles,
work overlapped with preprocessing, and statistics returned with every call.

Importing this module imports nnU-Net (see :mod:`.nnunet_compat`, which also lists and checks every hook used
here). One predictor runs one call at a time (:attr:`SciSegPredictor.lock`): nnU-Net's predictor keeps
per-call state of its own.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

from .network import input_channels
from .nnunet_compat import import_nnunet, patch_size, prefill_gaussian
from .roi import LARGE_TILE_FACTOR, body_mask, bounding_box, large_tile

BACKGROUND_LOGIT = -30.0  # region logit written where no tile ran (sigmoid ≈ 1e-13)
#: ``report(stage, done, total)``: "preprocess", "network" (forward passes done / to do), "resample"
Report = Callable[[str, int, int], None]
nnUNetPredictor = import_nnunet().predictor


@dataclass
class CallStats:
    """What one prediction did: tiles run and skipped, tile size, regions, and the time of each phase."""

    tiles: int = 0
    tiles_skipped: int = 0
    tile_size: Optional[List[int]] = None
    roi_shape: Optional[List[int]] = None
    model_shape: Optional[List[int]] = None
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {"tiles": self.tiles, "tiles_skipped": self.tiles_skipped, "tile_size": self.tile_size,
               "roi_shape": self.roi_shape, "model_shape": self.model_shape}
        out.update({k if k.endswith("calls") else f"{k}_seconds": v for k, v in self.seconds.items()})
        return out


class _Call:
    """Per-call state of a :class:`SciSegPredictor` (only one call runs at a time)."""

    def __init__(self):
        self.stats = CallStats()
        self.mask: Optional[np.ndarray] = None  # body mask of the region predicted (tile skipping)
        self.warm: Optional[threading.Thread] = None
        self.t_enter = self.t_exit = 0.0
        self.report: Optional[Report] = None
        self.passes_done = 0
        self.passes_total = 0


class SciSegPredictor(nnUNetPredictor):
    """``nnUNetPredictor`` with region-of-interest cropping, air-tile skipping, large tiles and statistics.

    Set ``crop``/``tiles``/``strides`` with :meth:`configure` after nnU-Net's ``manual_initialization``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.crop, self.tiles, self.strides = "none", "patch", []
        self._call: Optional[_Call] = None

    def configure(self, crop: str, tiles: str, strides: List[int]) -> None:
        self.crop, self.tiles, self.strides = crop, tiles, list(strides)

    def predict_with_stats(self, data_zyx: np.ndarray, spacing_zyx, return_probabilities: bool = False,
                           report: Optional[Report] = None):
        """(nnU-Net's output, :class:`CallStats`) for one (z, y, x) array; ``report`` follows its stages."""
        with self.lock:
            self._call = call = _Call()
            call.report = report
            if report is not None:
                report("preprocess", 0, 0)
                self.network.on_forward = self._forward_done
            t0 = time.perf_counter()
            try:
                with torch.inference_mode():
                    out = self.predict_single_npy_array(
                        data_zyx[None].astype(np.float32, copy=False), {"spacing": [float(s) for s in spacing_zyx]},
                        None, None, return_probabilities)
            finally:
                self._call = None
                self.network.on_forward = None
            if call.t_enter:  # nnU-Net's own phases around the sliding window
                call.stats.seconds["preprocess"] = call.t_enter - t0
                call.stats.seconds["resample_back"] = time.perf_counter() - call.t_exit
            return out, call.stats

    # -- nnU-Net's per-call methods (see nnunet_compat) -------------------------------------------------
    def predict_single_npy_array(self, *args, **kwargs):
        call = self._call
        if call is not None and self.tiles == "patch":  # tiles of the training patch: known before preprocessing
            call.warm = threading.Thread(target=self._warm_up, name="sciseg-warm-up", daemon=True)
            call.warm.start()
        try:
            return super().predict_single_npy_array(*args, **kwargs)
        finally:
            self._join_warm()

    def _warm_up(self) -> None:
        """What does not depend on the image, done while nnU-Net preprocesses it: compile the exported
        network for the tile shape, and fill nnU-Net's cache of the Gaussian tile weights (same call)."""
        patch = tuple(int(v) for v in self.configuration_manager.patch_size)
        self.network.prepare((1, input_channels(self.dataset_json), *patch))
        if self.use_gaussian and self.device.type == "cpu":
            prefill_gaussian(patch)

    def _join_warm(self) -> None:
        call = self._call
        if call is not None and call.warm is not None:  # before nnU-Net touches the weights
            call.warm.join()
            call.warm = None

    def predict_logits_from_preprocessed_data(self, data, *args, **kwargs):
        self._join_warm()
        call = self._call
        if call is None or args or kwargs:  # e.g. nnunetv2-neuropoly's return_logits_per_fold: plain path
            if call is not None:
                call.stats.roi_shape = call.stats.model_shape = list(data.shape[1:])
            return super().predict_logits_from_preprocessed_data(data, *args, **kwargs)
        call.t_enter = time.perf_counter()
        f0, c0, e0 = self.network.counters()
        stats = call.stats
        stats.roi_shape = stats.model_shape = list(data.shape[1:])
        from .tuning import trim_memory
        trim_memory()  # preprocessing temporaries
        box = self._region(data, call)
        sub = data if box is None else data[(slice(None), *box)]
        stats.roi_shape = list(sub.shape[1:])
        spatial = data.ndim == 4 and len(self.configuration_manager.patch_size) == 3
        tile = (large_tile(sub.shape[1:], self.configuration_manager.patch_size, self.strides, LARGE_TILE_FACTOR)
                if self.tiles == "large" and spatial else None)
        stats.tile_size = [int(t) for t in (tile or self.configuration_manager.patch_size)]
        try:
            with patch_size(self, tile):
                logits = super().predict_logits_from_preprocessed_data(sub)
        finally:
            call.mask = None
            self.network.release()  # nothing of the network's working memory stays during resampling
        logits = self._complete(logits, data, box, stats)
        f1, c1, e1 = self.network.counters()
        stats.seconds.update({"network": f1 - f0 - (e1 - e0), "forward_calls": c1 - c0, "compile": e1 - e0})
        call.t_exit = time.perf_counter()
        stats.seconds["sliding_window"] = call.t_exit - call.t_enter
        if call.report is not None:
            call.report("resample", 0, 0)
        return logits

    def _forward_done(self) -> None:
        call = self._call
        if call is not None and call.report is not None:
            call.passes_done += 1
            call.report("network", call.passes_done, max(call.passes_total, call.passes_done))

    def _region(self, data, call: _Call):
        """The body's bounding box to predict (None: all of it); sets the body mask for tile skipping."""
        spatial = data.ndim == 4 and len(self.configuration_manager.patch_size) == 3
        if self.crop == "none" or not spatial:
            return None
        mask = body_mask(data[0].cpu().numpy() if isinstance(data, torch.Tensor) else data[0])
        if mask is None:
            return None
        box = None
        if self.crop == "body":
            margin = [max(8, p // 8) for p in self.configuration_manager.patch_size]
            box = bounding_box(mask, margin)
            if all(b.stop - b.start == n for b, n in zip(box, mask.shape)):
                box = None
            else:
                mask = mask[box]
        call.mask = mask
        return box

    def _complete(self, logits, data, box, stats: CallStats):
        """Logits on the whole preprocessed grid: skipped tiles and the area outside the box are background."""
        if stats.tiles_skipped:
            hole = torch.isnan(logits).any(0)
            if bool(hole.any()):
                logits = torch.where(hole[None], self._background((logits.shape[0], 1, 1, 1), logits.dtype),
                                     logits)
        if box is not None:
            full = self._background((logits.shape[0], *data.shape[1:]), logits.dtype)
            full[(slice(None), *box)] = logits
            logits = full
        return logits

    def _background(self, shape, dtype):
        out = torch.full(shape, BACKGROUND_LOGIT, dtype=dtype)
        if not self.label_manager.has_regions:  # softmax: background channel wins
            out[0] = -BACKGROUND_LOGIT
        return out

    def _internal_get_sliding_window_slicers(self, image_size):
        slicers = super()._internal_get_sliding_window_slicers(image_size)
        call = self._call
        if call is None:
            return slicers
        mask = call.mask
        if mask is not None and len(image_size) == 3:
            diff = np.array(image_size) - np.array(mask.shape)
            if np.all(diff >= 0):
                below = diff // 2
                padded = np.pad(mask, [(int(b), int(d - b)) for b, d in zip(below, diff)])
                kept = [s for s in slicers if padded[tuple(s[1:])].any()]
                if kept:
                    call.stats.tiles_skipped += len(slicers) - len(kept)
                    slicers = kept
        if call.report is not None and call.stats.tiles == 0:  # first fold: every fold runs the same tiles
            per_tile = 2 ** len(self.allowed_mirroring_axes or ()) if self.use_mirroring else 1
            call.passes_total = len(slicers) * per_tile * max(1, len(self.list_of_parameters or [None]))
            call.report("network", 0, call.passes_total)
        call.stats.tiles += len(slicers)
        return slicers
