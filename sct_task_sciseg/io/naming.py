"""Where outputs go: one naming rule for masks, their sidecars and every derived file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

NIFTI_SUFFIXES = (".nii.gz", ".nii")
PathLike = Union[str, Path]


def strip_nifti_suffix(path: PathLike) -> str:
    name = str(path)
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_nifti(path: PathLike) -> bool:
    return str(path).endswith(NIFTI_SUFFIXES)


def is_output_folder(output: Optional[PathLike]) -> bool:
    """``-o DIR/`` (ends with a separator) or an existing folder."""
    return bool(output) and (str(output).endswith(("/", os.sep)) or Path(output).is_dir())


def output_base(input_path: PathLike, output: Optional[PathLike]) -> Path:
    """Base path (no suffix) of the outputs: ``-o X.nii.gz`` → ``X``; ``-o DIR/`` → ``DIR/<in>``."""
    stem = Path(strip_nifti_suffix(Path(input_path).name))
    if output is None:
        return Path(input_path).parent / stem
    if is_output_folder(output):
        return Path(output) / stem
    return Path(strip_nifti_suffix(Path(output)))


SOFT = "_soft"  # probability maps: ``<base><suffix>_soft.nii.gz`` under the key ``<name>_soft``


BIDS_LABELS = {"sc": "SC"}  # output name → BIDS ``label-`` value (others: the output's name)


def output_paths(base: PathLike, outputs: Iterable, soft: bool = False, bids: bool = False) -> Dict[str, Path]:
    """Output name → ``<base><suffix>.nii.gz`` for each task output (anything with ``name`` and ``suffix``);
    with ``soft``, also ``<name>_soft`` → ``<base><suffix>_soft.nii.gz`` (its probability map).

    ``bids`` (a BIDS dataset's scan written into a derivatives folder): the BIDS-derivatives names NeuroPoly's
    datasets use, ``<base>_label-SC_seg.nii.gz``, ``<base>_label-lesion_seg.nii.gz`` and the probability maps
    ``<base>_label-SC_probseg.nii.gz`` (BIDS's suffix for them)."""
    outputs = list(outputs)
    if bids:
        labels = {o.name: BIDS_LABELS.get(o.name, o.name) for o in outputs}
        paths = {o.name: Path(f"{base}_label-{labels[o.name]}_seg.nii.gz") for o in outputs}
        if soft:
            paths.update({o.name + SOFT: Path(f"{base}_label-{labels[o.name]}_probseg.nii.gz") for o in outputs})
        return paths
    paths = {o.name: Path(f"{base}{o.suffix}.nii.gz") for o in outputs}
    if soft:
        paths.update({o.name + SOFT: Path(f"{base}{o.suffix}{SOFT}.nii.gz") for o in outputs})
    return paths


def sidecar_path(image_path: PathLike) -> Path:
    """The JSON sidecar of an image: ``X.nii.gz`` → ``X.json``."""
    return Path(strip_nifti_suffix(image_path) + ".json")


def is_hidden(path: PathLike) -> bool:
    """Hidden names (``.x``): temporary files of atomic writes, macOS ``._x`` companions; never inputs."""
    return Path(path).name.startswith(".")


def real(path: PathLike) -> str:
    """The absolute, symlink-free spelling of ``path`` (which need not exist), for comparing paths."""
    return os.path.normcase(os.path.realpath(os.path.abspath(os.fspath(path))))


def is_inside(path: PathLike, folder: PathLike) -> bool:
    p, f = real(path), real(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def collision(plans: Sequence[Tuple[PathLike, Iterable[PathLike]]]) -> Optional[str]:
    """The first problem with ``(input, its output paths)`` pairs: an output that is an input, or two inputs
    with the same output; None when every output is new and distinct."""
    inputs = {real(i): i for i, _ in plans}
    owner: Dict[str, PathLike] = {}
    for inp, outs in plans:
        for out in outs:
            key = real(out)
            if key in inputs and real(inputs[key]) == real(inp):
                return f"{inp}: its own output {out} is this input"
            if key in inputs:
                return f"{inputs[key]}: is an input and would be overwritten by the output of {inp}"
            if key in owner and real(owner[key]) != real(inp):
                return f"{owner[key]} and {inp} would both write {out}"
            owner[key] = inp
    return None
