"""``sciseg -demo``: the whole main job offline, with the embedded phantom-trained model.

Writes a synthetic T2w phantom (orientation and voxel size drawn from ``-seed``, default
:data:`DEFAULT_SEED`: the same seed gives the same phantom, masks and Dice), installs the embedded release (no
network), segments the phantom, writes the masks into ``-o DIR`` (default: a new temporary folder, printed)
and prints Dice against the phantom's truth.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from ..io.nifti import save_image
from ..pipeline import Segmenter
from ..tasks import get_task
from ..weights import install
from .phantom import dice, make_phantom


DEFAULT_SEED = 2024


def run_demo(args) -> int:
    task = get_task(None)
    release = task.demo_release
    if release is None:
        print("sciseg: error: this task ships no embedded demo model", file=sys.stderr)
        return 1
    seed = DEFAULT_SEED if args.seed is None else args.seed
    out_dir = Path(args.o) if args.o else Path(tempfile.mkdtemp(prefix="sciseg_demo_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"demo folder: {out_dir} (seed {seed}; another phantom: -seed N)")
    image, truth = make_phantom(seed)
    in_path = out_dir / f"phantom_seed{seed}_T2w.nii.gz"
    save_image(image, in_path)
    save_image(truth, out_dir / f"phantom_seed{seed}_truth.nii.gz")
    codes = "".join(nib.aff2axcodes(image.affine))
    zooms = "×".join(f"{z:.2g}" for z in image.header.get_zooms()[:3])
    print(f"phantom: {in_path} ({'×'.join(map(str, image.shape))} voxels of {zooms} mm, axis codes {codes})")

    model = install(task, release.tag, models_dir=args.models_dir, quiet=args.v == 0)
    segmenter = Segmenter(task, release.tag, models_dir=args.models_dir, device=args.device,
                          threads=args.threads, quiet=args.v == 0)
    paths, result = segmenter.segment_file_with_result(in_path)
    scheme = task.labels
    truth_labels = np.asarray(truth.dataobj)  # the phantom's own labels: 1 structure, 2 finding
    masks = {k: np.asarray(nib.load(str(p)).dataobj) for k, p in paths.items()}
    d_sc = dice(masks[scheme.parent], truth_labels >= 1)
    lesion = masks[scheme.finding]
    d_les = dice(lesion, truth_labels == 2)
    found = bool(lesion.any()) and bool((lesion & (truth_labels == 2)).any())
    t = result.timings
    print(f"model: {task.name}@{model.tag} ({model.model_folder})")
    for name, p in paths.items():
        print(f"wrote {p} ({int(masks[name].sum())} voxels)")
    print(f"Dice {scheme.output(scheme.parent).display} {d_sc:.3f}, "
          f"{scheme.output(scheme.finding).display} {d_les:.3f}; "
          f"lesion found: {'yes' if found else 'no'} "
          f"(model load {t['load_model']:.1f} s, predict {t['predict']:.1f} s)")
    ok = d_sc >= 0.9 and found
    if not ok:
        print("sciseg: demo below expectations (cord Dice < 0.9 or lesion missed)", file=sys.stderr)
    return 0 if ok else 1
