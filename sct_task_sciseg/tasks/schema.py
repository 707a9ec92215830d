"""What a task is, as plain frozen data: its releases, how its label map becomes output masks, and the
predictor defaults. Imports nothing beyond the standard library."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Tuple

from ..errors import UnknownTaskError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# SCT contrast names → BIDS suffixes of anatomical scans (BIDS specification, "anat" suffixes)
BIDS_SUFFIXES = {"t1": "_T1w", "t2": "_T2w", "t2s": "_T2starw", "t2star": "_T2starw", "pd": "_PDw",
                 "flair": "_FLAIR", "mp2rage": "_UNIT1"}


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
            return self.embedded_path().as_uri()
        return f"{base_url.rstrip('/')}/{self.tag}/{self.asset}"

    def embedded_path(self) -> Path:
        return DATA_DIR / self.asset


@dataclass(frozen=True)
class Output:
    """One output mask: the voxels whose label is in ``labels``, written as ``<in><suffix>.nii.gz``.

    ``title`` is the structure's name for people (QC report columns, messages)."""

    name: str
    labels: Tuple[int, ...]
    suffix: str
    description: str = ""
    title: str = ""

    @property
    def display(self) -> str:
        return self.title or self.name


@dataclass(frozen=True)
class LabelScheme:
    """How a model's label map becomes output masks, and what post-processing, QC and analysis act on.

    ``parent`` is the output holding every other one (SCIseg: the cord, lesion included): whole-structure
    operations (largest component, hole filling) act on it, and QC centres its pictures on it. ``finding`` is
    the output whose connected components are counted, measured and removed when small (SCIseg: the lesion);
    None for a task without one.
    """

    outputs: Tuple[Output, ...]
    parent: str
    finding: Optional[str] = None

    def __post_init__(self):
        names = [o.name for o in self.outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate output names {names}")
        if self.parent not in names or (self.finding is not None and self.finding not in names):
            raise ValueError(f"parent {self.parent!r} / finding {self.finding!r} must be outputs ({names})")
        parent = set(self.output(self.parent).labels)
        if any(not set(o.labels) <= parent for o in self.outputs):
            raise ValueError(f"every output's labels must be inside the parent output {self.parent!r}")

    def output(self, name: str) -> Output:
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(f"no output {name!r} (outputs: {', '.join(o.name for o in self.outputs)})")

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def base_label(self) -> int:
        """The parent's own label: the one that belongs to no other output (SCIseg: 1, cord without lesion).
        Voxels removed from a finding fall back to it."""
        others = {label for o in self.outputs if o.name != self.parent for label in o.labels}
        own = [label for label in self.output(self.parent).labels if label not in others]
        if len(own) != 1:
            raise ValueError(f"output {self.parent!r} needs exactly one label of its own, has {own}")
        return own[0]


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
    labels: LabelScheme
    releases: Tuple[Release, ...]  # newest first; the first non-embedded one is the default
    base_url: str
    dataset_labels: Mapping[str, object]  # what dataset.json["labels"] must say
    default_orientation: str = "RPI"  # SCT convention ("from" letters); dataset.json may override
    predictor: PredictorDefaults = field(default_factory=PredictorDefaults)
    sct_model_key: str = ""  # folder name under SCT's data/deepseg_models
    code_url: str = ""
    short_description: str = ""  # one line for SCT's task table (SCT pads descriptions to 50 columns)
    anat_suffixes: Tuple[str, ...] = ()  # BIDS suffixes batch discovery takes; () = those of the contrasts

    def __post_init__(self):
        self.bids_suffixes  # noqa: B018 - an unknown contrast fails here, not in a batch

    @property
    def bids_suffixes(self) -> Tuple[str, ...]:
        """The BIDS suffixes of the scans this task segments (SCIseg: ``("_T2w",)``): ``anat_suffixes`` if
        given, else those of its contrasts (:data:`BIDS_SUFFIXES`)."""
        if self.anat_suffixes:
            return self.anat_suffixes
        unknown = [c for c in self.contrasts if c not in BIDS_SUFFIXES]
        if unknown or not self.contrasts:
            raise ValueError(f"task {self.name}: no BIDS suffix known for contrasts {unknown}; give anat_suffixes")
        return tuple(dict.fromkeys(BIDS_SUFFIXES[c] for c in self.contrasts))

    @property
    def names(self) -> Tuple[str, ...]:
        return (self.name,) + tuple(self.aliases)

    @property
    def outputs(self) -> Tuple[Output, ...]:
        return self.labels.outputs

    def output(self, name: str) -> Output:
        return self.labels.output(name)

    @property
    def default_release(self) -> Release:
        return next((r for r in self.releases if not r.embedded), self.releases[0])

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
            raise UnknownTaskError(f"task {self.name} has no release {tag!r} (known: {known})")
        return matches[0]
