"""The one plan of what a scan writes, built from its input, the output argument, the task and the flags.

Everything that needs to know a scan's files reads it from :class:`ScanOutputs`: the collision and folder
checks before a run, the resume rule, the writers (all of a scan's files in one all-or-none set), batch input
discovery (a package output is never taken as an input: :func:`is_package_output`), temporary-file cleanup,
the cluster and QC. A new kind of image written beside each mask is a row of :data:`IMAGE_KINDS` (its flag and
file names) and its producer in :mod:`sct_task_sciseg.pipeline.extra_images` (how it is computed and described).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Dict, Iterable, List, Optional, Tuple

from .atomic import stale_temps
from .naming import PathLike, SOFT, output_base, sidecar_path, strip_nifti_suffix

ANALYSIS_SUFFIXES = {"csv": "_analysis.csv", "label": "_label{ext}", "json": "_analysis.json"}
ROI_SHEET = "ROI_occupied_by_lesion"  # SCT's sheet name, also the CSV's
SHEET_SUFFIXES = {"distribution": "_lesion_distribution.csv", "roi": f"_{ROI_SHEET}.csv"}  # -f
XLSX_SUFFIXES = {"xlsx": "_analysis.xlsx"}
BIDS_LABELS = {"sc": "SC"}  # output name -> BIDS ``label-`` value (others: the output's name)


@dataclass(frozen=True)
class ImageKind:
    """An image written beside each output's mask when asked for: ``Segmenter(extra_images=(flag,))`` or
    ``sciseg -<flag> 1``. Files: ``<base><suffix><key>.nii.gz`` (key ``<output><key>``), in a BIDS dataset's
    derivatives ``<base>_label-<L>_<bids>.nii.gz``; each with its JSON sidecar."""

    flag: str
    key: str
    bids: str
    help: str  # the command's help text; ``{files}`` is replaced by the task's file names


#: Every kind of extra image, by flag (their producers: :mod:`sct_task_sciseg.pipeline.extra_images`).
IMAGE_KINDS: Dict[str, ImageKind] = {k.flag: k for k in (
    ImageKind("soft", SOFT, "probseg", "also write each output's probability map, {files} (float32 in [0, 1], "
                                       "same inference; the mask at -thr T is soft >= T, before post-processing)"),
)}


def image_kind_of(key: str) -> Optional[ImageKind]:
    """The kind of an extra image's key (``sc_soft`` → soft); None for a mask's key."""
    return next((k for k in IMAGE_KINDS.values() if key.endswith(k.key)), None)


def analysis_paths(base: PathLike, label_suffix: str = ".nii.gz", *, sheets: bool = False,
                   xlsx: bool = False) -> Dict[str, Path]:
    """The lesion analysis of ``<base>``: ``_analysis.csv``, ``_label<ext>`` (lesion ids), ``_analysis.json``;
    with ``sheets`` (``-f``) ``distribution`` and ``roi``; with ``xlsx`` the spreadsheet."""
    suffixes = dict(ANALYSIS_SUFFIXES, **(SHEET_SUFFIXES if sheets else {}), **(XLSX_SUFFIXES if xlsx else {}))
    return {k: Path(f"{base}{v.format(ext=label_suffix)}") for k, v in suffixes.items()}


@dataclass(frozen=True)
class ScanOutputs:
    """Every file one scan writes: masks and extra images (each with a JSON sidecar) and the analysis."""

    masks: Dict[str, Path]  # output name -> <base><suffix>.nii.gz
    extra_images: Dict[str, Path] = field(default_factory=dict)  # sc_soft -> <base>_sc_seg_soft.nii.gz (-soft)
    analysis: Dict[str, Path] = field(default_factory=dict)  # csv / label / json of the finding (-analyze)

    @classmethod
    def of(cls, base: PathLike, task, extra_images: Collection[str] = (), analyze: bool = False,
           bids: bool = False) -> "ScanOutputs":
        """The plan for outputs at ``<base>`` (no suffix) of ``task`` with the kinds of :data:`IMAGE_KINDS` in
        ``extra_images`` (``("soft",)`` for ``-soft 1``) and the analysis (``-analyze``).

        ``bids`` (a BIDS dataset's scan written into a derivatives folder): the BIDS-derivatives names NeuroPoly's
        datasets use, ``<base>_label-SC_seg.nii.gz``, ``<base>_label-lesion_seg.nii.gz`` and the probability maps
        ``<base>_label-SC_probseg.nii.gz`` (BIDS's suffix for them); else SCT's ``<base>_sc_seg.nii.gz``."""
        kinds = [IMAGE_KINDS[flag] for flag in IMAGE_KINDS if flag in extra_images]
        if bids:
            labels = {o.name: BIDS_LABELS.get(o.name, o.name) for o in task.outputs}
            masks = {n: Path(f"{base}_label-{v}_seg.nii.gz") for n, v in labels.items()}
            extra = {n + k.key: Path(f"{base}_label-{v}_{k.bids}.nii.gz") for k in kinds for n, v in labels.items()}
        else:
            masks = {o.name: Path(f"{base}{o.suffix}.nii.gz") for o in task.outputs}
            extra = {o.name + k.key: Path(f"{base}{o.suffix}{k.key}.nii.gz") for k in kinds for o in task.outputs}
        finding = getattr(task.labels, "finding", None) if analyze else None
        analysis = analysis_paths(strip_nifti_suffix(masks[finding])) if finding in masks else {}
        return cls(masks, extra, analysis)

    @classmethod
    def for_input(cls, input_path: PathLike, output: Optional[PathLike], task,
                  extra_images: Collection[str] = (), analyze: bool = False) -> "ScanOutputs":
        return cls.of(output_base(input_path, output), task, extra_images, analyze)

    @property
    def images(self) -> Dict[str, Path]:
        """Masks and extra images by key (each written with its sidecar)."""
        return {**self.masks, **self.extra_images}

    @property
    def sidecars(self) -> List[Path]:
        return [sidecar_path(p) for p in self.images.values()]

    @property
    def folder(self) -> Path:
        return next(iter(self.masks.values())).parent

    def files(self) -> List[Path]:
        """Every file of the scan, in writing order."""
        return [*self.images.values(), *self.sidecars, *self.analysis.values()]

    def absolute(self) -> "ScanOutputs":
        """The same plan with absolute paths (for processes running in other folders)."""
        def fix(d: Dict[str, Path]) -> Dict[str, Path]:
            return {k: Path(os.path.abspath(p)) for k, p in d.items()}
        return ScanOutputs(fix(self.masks), fix(self.extra_images), fix(self.analysis))

    def stale_temps(self) -> List[Path]:
        """Temporary files left beside any of them by a process killed while writing."""
        return [t for p in self.files() for t in stale_temps(p)]


def output_suffixes(task) -> Tuple[str, ...]:
    """The name endings of every file a scan of ``task`` can write (all flags on): for input discovery."""
    names = set()
    for bids in (False, True):
        plan = ScanOutputs.of("", task, tuple(IMAGE_KINDS), analyze=True, bids=bids)
        names |= {p.name for p in plan.files()} | {p.name.replace(".nii.gz", ".nii") for p in plan.files()}
        csv = next((p.name for p in plan.analysis.values() if p.name.endswith(ANALYSIS_SUFFIXES["csv"])), None)
        if csv:  # sciseg_analyze_lesion's -f tables and spreadsheet of the same mask
            stem = csv[:-len(ANALYSIS_SUFFIXES["csv"])]
            names |= {stem + v for v in (*SHEET_SUFFIXES.values(), *XLSX_SUFFIXES.values())}
    return tuple(sorted(names))


def is_package_output(path: PathLike, tasks: Iterable) -> bool:
    """True when ``path`` is named like a file this package writes for any of ``tasks``."""
    name = Path(path).name
    return any(name.endswith(suffix) for task in tasks for suffix in output_suffixes(task))
