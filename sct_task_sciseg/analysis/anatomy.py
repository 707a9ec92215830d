"""Where each lesion lies, beyond SCT's ``measures`` sheet: levels (``-levels`` or the ``-f`` template's), side
(from the cord's own centre), atlas sheets and left/right tract shares (``-f``), and the soft volume of a
probability map (``-soft-threshold``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from . import atlas
from .levels import lesion_levels, level_type_of, slice_levels
from .side import side_shares
from .values import check_finite

NAN = float("nan")


@dataclass
class Anatomy:
    grid: object
    zooms: tuple
    sums: object  # SliceSums of the cord, or None
    prob: Optional[np.ndarray]  # RPI probability map (-soft-threshold) or None
    cord: Optional[np.ndarray]
    template: object  # atlas.Template or None
    per_slice_level: Optional[np.ndarray]
    level_type: Optional[str]

    @classmethod
    def of(cls, grid, opts, sums, prob, cord) -> "Anatomy":
        levels, kind = None, None
        if opts.levels_img is not None:
            data = np.asanyarray(opts.levels_img.dataobj)
            data = data.reshape(data.shape[:3]) if data.ndim == 4 else data
            check_finite(data, "labelled cord")
            levels = slice_levels(grid.to_rpi(data))
            name = str(getattr(opts.levels_img, "get_filename", lambda: "")() or "")
            kind = level_type_of(name, opts.level_type)
        elif opts.template is not None:
            levels, kind = slice_levels(opts.template.levels), opts.level_type or "vertebral"
        return cls(grid, grid.rpi_zooms, sums, prob, cord, opts.template, levels, kind)

    def lesion_columns(self, crop) -> Dict[str, object]:
        out: Dict[str, object] = {}
        if self.sums is not None:
            out.update(side_shares(crop.mask, crop.origin, self.sums.sum_x, self.sums.count))
        if self.per_slice_level is not None:
            zs = crop.z_slices
            areas = crop.mask.sum(axis=(0, 1))[zs - crop.origin[2]]
            cord_area = self.sums.count if self.sums is not None else None
            out.update(lesion_levels(zs, areas, self.per_slice_level, cord_area, self.level_type))
        if self.prob is not None:
            x0, y0, z0 = crop.origin
            nx, ny, nz = crop.mask.shape
            p = self.prob[x0:x0 + nx, y0:y0 + ny, z0:z0 + nz][crop.mask]
            out["soft_volume [mm3]"] = float(np.sum(p) * np.prod(self.zooms))
        return out

    def summary(self, lesion_in_cord: np.ndarray, opts) -> Dict[str, object]:
        out: Dict[str, object] = {"nli_slice": opts.nli_slice, "level_type": self.level_type}
        if self.prob is not None:
            inside = self.prob if self.cord is None else np.where(self.cord, self.prob, 0.0)
            out["soft_volume [mm3]"] = float(np.sum(inside) * np.prod(self.zooms))
            out["soft_threshold"] = opts.soft_threshold
        if self.per_slice_level is not None and lesion_in_cord.any():
            lv = self.per_slice_level[np.nonzero(lesion_in_cord.any(axis=(0, 1)))[0]]
            lv = lv[lv > 0]
            if lv.size:
                out.update({"level_rostral": int(lv.min()), "level_caudal": int(lv.max())})
        return out

    def sheets(self, details: List, perslice: bool) -> Dict[str, tuple]:
        """SCT's ``lesion#N_distribution`` sheets and ``ROI_occupied_by_lesion``, each (columns, rows)."""
        t = self.template
        rows = atlas.make_rows(t, perslice)
        full = np.zeros(t.levels.shape, dtype=bool)
        out: Dict[str, tuple] = {}
        for d in details:
            one = np.zeros_like(full)
            x0, y0, z0 = d.lesion.origin
            nx, ny, nz = d.lesion.mask.shape
            one[x0:x0 + nx, y0:y0 + ny, z0:z0 + nz] = d.lesion.mask
            full |= one
            out[f"lesion#{d.label}_distribution"] = (atlas.sheet_columns(t, rows, True),
                                                     atlas.lesion_distribution(one, t, rows, self.zooms))
        out["ROI_occupied_by_lesion"] = (atlas.sheet_columns(t, rows, False),
                                         atlas.roi_occupied(full, t, rows, self.zooms))
        return out

    def tract_sides(self, sheets: Dict[str, tuple], label: int) -> Dict[str, float]:
        left, right = atlas.side_shares(sheets[f"lesion#{label}_distribution"][1], self.template)
        return {"tracts_left [%]": left, "tracts_right [%]": right}
