"""Task definitions: pure data (no torch, no nnU-Net), discovered through entry points.

A task says what a model is (name, aliases, citation), where its versioned weights live (releases, with
optional pinned sha256/size), how its label map splits into output masks, and the predictor defaults.
Other packages can add tasks by exposing a :class:`Task` in the ``sct_task_sciseg.tasks`` entry-point group.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

ENTRY_POINT_GROUP = "sct_task_sciseg.tasks"
DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Release:
    """One versioned weights archive.

    ``sha256``/``size`` are optional: upstream publishes none. When absent, the installer records the hash of
    the first install and verifies every later use against that record. Pin a known hash by filling them in.
    ``embedded`` releases ship inside this package (``DATA_DIR / asset``) and never touch the network.
    """

    tag: str
    asset: str
    description: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    embedded: bool = False

    def url(self, base_url: str) -> str:
        """Download URL under ``base_url`` (upstream or a mirror), keeping ``{tag}/{asset}``."""
        if self.embedded:
            return (DATA_DIR / self.asset).as_uri()
        return f"{base_url.rstrip('/')}/{self.tag}/{self.asset}"

    def embedded_path(self) -> Path:
        return DATA_DIR / self.asset


@dataclass(frozen=True)
class Output:
    """One output mask: the voxels whose label is in ``labels``, written as ``<in><suffix>.nii.gz``."""

    name: str
    labels: Tuple[int, ...]
    suffix: str
    description: str = ""


@dataclass(frozen=True)
class PredictorDefaults:
    """nnU-Net predictor settings, as SCT uses them for this task."""

    tile_step_size: float = 0.5
    use_gaussian: bool = True
    use_mirroring: bool = False
    checkpoints: Tuple[str, ...] = ("checkpoint_final.pth", "checkpoint_best.pth")
    folds: Optional[Tuple[int, ...]] = None  # None = every fold_* found


@dataclass(frozen=True)
class Task:
    name: str
    aliases: Tuple[str, ...]
    description: str
    long_description: str
    contrasts: Tuple[str, ...]
    citation: str
    outputs: Tuple[Output, ...]
    releases: Tuple[Release, ...]  # newest first; the first non-embedded one is the default
    base_url: str
    dataset_labels: Mapping[str, object]  # what dataset.json["labels"] must say
    default_orientation: str = "RPI"  # SCT convention ("from" letters); dataset.json may override
    predictor: PredictorDefaults = field(default_factory=PredictorDefaults)
    sct_model_key: str = ""  # folder name under SCT's data/deepseg_models
    code_url: str = ""

    @property
    def names(self) -> Tuple[str, ...]:
        return (self.name,) + tuple(self.aliases)

    @property
    def default_release(self) -> Release:
        return next(r for r in self.releases if not r.embedded)

    @property
    def demo_release(self) -> Optional[Release]:
        return next((r for r in self.releases if r.embedded), None)

    def release(self, tag: Optional[str] = None) -> Release:
        """The release called ``tag`` (a unique prefix is enough), or the default release."""
        if tag is None:
            return self.default_release
        exact = [r for r in self.releases if r.tag == tag]
        matches = exact or [r for r in self.releases if r.tag.startswith(tag)]
        if len(matches) != 1:
            known = ", ".join(r.tag for r in self.releases)
            raise KeyError(f"task {self.name} has no release {tag!r} (known: {known})")
        return matches[0]

    def output(self, name: str) -> Output:
        return next(o for o in self.outputs if o.name == name)


SCISEG = Task(
    name="seg_sc_lesion_t2w_sci",
    aliases=("lesion_sci_t2",),
    description="Spinal cord and intramedullary lesion segmentation on T2w MRI of spinal cord injury (SCIseg)",
    long_description=(
        "SCIseg segments the spinal cord and intramedullary lesions (oedema, haemorrhage) on T2w MRI of "
        "traumatic and non-traumatic spinal cord injury (SCI, DCM), in any orientation (axial or sagittal) "
        "and resolution. nnU-Net v2, 3d_fullres, region-based (cord includes lesion). V2 was trained on 7 "
        "sites including degenerative cervical myelopathy and acute pre-operative SCI."
    ),
    contrasts=("t2",),
    citation=(
        "Karthik EN, Valosek J, et al. SCIseg: Automatic Segmentation of Intramedullary Lesions in Spinal "
        "Cord Injury on T2-weighted MRI Scans. Radiology: Artificial Intelligence 2024. "
        "doi:10.1148/ryai.240005. | Karthik EN, et al. SCIsegV2: A Universal Tool for Segmentation of "
        "Intramedullary Lesions in Spinal Cord Injury. MICCAI AMAI 2024, LNCS. "
        "doi:10.1007/978-3-031-82007-6_19"
    ),
    outputs=(
        Output("sc", (1, 2), "_sc_seg", "spinal cord, lesion included"),
        Output("lesion", (2,), "_lesion_seg", "intramedullary lesion"),
    ),
    releases=(
        Release("r20240729", "model_SCIsegV2_r20240729.zip", "SCIsegV2 (7 sites, SCI and DCM)"),
        Release("r20240130", "model-sci-multisite_r20240130.zip", "SCIseg V1 (3 sites)"),
        Release(
            "phantom-r20261124", "sciseg_phantom_r20261124.zip",
            "small demo model trained on synthetic phantoms (offline demo and tests; not for research)",
            sha256="54a4cb9bb5198ab1a853dcf1e180f3d9fd7cacbc58c6fce011d9d75aa03e0ca0", size=1313873,
            embedded=True,
        ),
    ),
    base_url="https://github.com/ivadomed/model_seg_sci/releases/download",
    dataset_labels={"background": 0, "sc": [1, 2], "lesion": 2},
    default_orientation="RPI",
    predictor=PredictorDefaults(),
    sct_model_key="model_seg_sci_multiclass_sc_lesion_nnunet",
    code_url="https://github.com/ivadomed/model_seg_sci",
)


def _entry_points():
    from importlib.metadata import entry_points

    eps = entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, []))  # Python 3.9


def all_tasks() -> Dict[str, Task]:
    """Every registered task by its main name (this package's SCIseg is always there)."""
    tasks: Dict[str, Task] = {SCISEG.name: SCISEG}
    for ep in _entry_points():
        try:
            task = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break this one
            print(f"warning: task plugin {ep.name!r} failed to load: {exc}", file=sys.stderr)
            continue
        if isinstance(task, Task):
            tasks.setdefault(task.name, task)
    return tasks


def get_task(name: Optional[str] = None) -> Task:
    """The task called ``name`` (main name or alias); the only task when ``name`` is None."""
    tasks = all_tasks()
    if name is None:
        if len(tasks) == 1:
            return next(iter(tasks.values()))
        return SCISEG
    for task in tasks.values():
        if name in task.names:
            return task
    known = ", ".join(sorted(n for t in tasks.values() for n in t.names))
    raise KeyError(f"unknown task {name!r} (known: {known})")


def split_task_spec(spec: str) -> Tuple[str, Optional[str]]:
    """``"name@tag"`` → ``("name", "tag")``; ``"name"`` → ``("name", None)``."""
    name, _, tag = spec.partition("@")
    return name, (tag or None)
