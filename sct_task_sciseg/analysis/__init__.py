"""Lesion morphometrics with the definitions of SCT 7.3's ``sct_analyze_lesion`` (numpy/scipy/nibabel only).

Modules: :mod:`.grid` (RPI reorientation, slice numbers back in the input's indices), :mod:`.centerline`
(SCT's B-spline centreline and angles), :mod:`.midsagittal` (the shared midsagittal slice), :mod:`.measures`
(volume, length, width, diameter, damage ratio, midsagittal extent), :mod:`.bridges` (tissue bridges),
:mod:`.lesion_rows` and :mod:`.table` (rows, columns, CSV), :mod:`.analyze` (entry points), :mod:`.mask_files`
(masks from files), :mod:`.file_analysis` (the analysis of mask files), :mod:`.values` (what a mask may hold),
:mod:`.atlas` (``-f``: SCT's atlas sheets), :mod:`.levels` and :mod:`.side` (level and side columns),
:mod:`.anatomy` (those columns per lesion), :mod:`.result_files` (CSV, label image, sheets, xlsx, JSON sidecar),
:mod:`.phantoms` (analytic test objects).
"""
from .analyze import (SCT_CONNECTIVITY, LesionAnalysis, LesionDetail, Options, analyze_label_map, analyze_lesions,
                      analyze_masks)
from .file_analysis import analyze_lesion_files
from .mask_files import load_mask
from .table import OWN_COLUMNS, SCT_COLUMNS
from .result_files import analysis_paths, write_analysis

__all__ = ["OWN_COLUMNS", "SCT_COLUMNS", "SCT_CONNECTIVITY", "LesionAnalysis", "LesionDetail", "Options",
           "analysis_paths", "analyze_label_map", "analyze_lesion_files", "analyze_lesions", "analyze_masks",
           "load_mask", "write_analysis"]
