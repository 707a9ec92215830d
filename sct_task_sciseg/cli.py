"""``sciseg``: sct_deepseg's single-dash flags for SCIseg, standalone.

Importing this module (``-h``, ``-list-tasks``, installs) never imports torch or nnU-Net.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from . import __version__
from .errors import SciSegError

EPILOG = """\
examples:
  sciseg -i sub-01_T2w.nii.gz                      # → sub-01_T2w_sc_seg.nii.gz, sub-01_T2w_lesion_seg.nii.gz
  sciseg -i a.nii.gz b.nii.gz -o out/              # several inputs, model loaded once
  sciseg -install-task seg_sc_lesion_t2w_sci       # default release (r20240729, SCIsegV2)
  sciseg -install-task seg_sc_lesion_t2w_sci@r20240130 -custom-url /media/usb/model-sci-multisite_r20240130.zip
  SCISEG_RELEASE_URL=http://mirror.hospital/sciseg sciseg -install-task seg_sc_lesion_t2w_sci
  sciseg -demo                                     # offline: phantom → masks → Dice

post-processing (class-aware, all off by default):
  -largest      keeps the largest connected CORD component (lesions outside it are dropped with it)
  -fill-holes   fills enclosed holes of the CORD
  -remove-small drops LESION components below a size (5mm3, 10vox); prefix sc: to act on the cord
  -thr          threshold on the cord and lesion region probabilities (nnU-Net's default is 0.5)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sciseg", description="Spinal cord and lesion segmentation on T2w MRI (SCIseg), as sct_deepseg does it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, prefix_chars="-")
    io = p.add_argument_group("input/output")
    io.add_argument("-i", nargs="+", metavar="FILE", help="input image(s): NIfTI files, folders or a BIDS dataset")
    io.add_argument("-o", metavar="OUT", help="output base (X.nii.gz → X_sc_seg.nii.gz) or folder (ends with /)")
    io.add_argument("-task", default=None, metavar="NAME[@TAG]",
                    help="task name or alias, optionally @release tag (default: seg_sc_lesion_t2w_sci)")
    mdl = p.add_argument_group("model installation")
    mdl.add_argument("-install-task", "-install", dest="install", nargs="?", const="", metavar="NAME[@TAG]",
                     help="install (download and verify) a task's model release and exit")
    mdl.add_argument("-custom-url", metavar="URL|ZIP|FOLDER",
                     help="install from this URL, local zip or local model folder instead of the release URL")
    mdl.add_argument("-models-dir", metavar="DIR", help="where models are installed (default: $SCISEG_MODELS_DIR, "
                     "SCT's data/deepseg_models inside SCT, else the user data folder)")
    mdl.add_argument("-force", action="store_true", help="reinstall even if installed and intact")
    mdl.add_argument("-list-tasks", action="store_true", help="list tasks with installed and available releases")
    pp = p.add_argument_group("post-processing (see below)")
    pp.add_argument("-thr", type=float, default=None, help="region probability threshold (default: nnU-Net's 0.5)")
    pp.add_argument("-largest", type=int, nargs="?", const=1, default=0, choices=(0, 1),
                    help="1: keep the largest cord component")
    pp.add_argument("-fill-holes", type=int, nargs="?", const=1, default=0, choices=(0, 1),
                    help="1: fill holes in the cord")
    pp.add_argument("-remove-small", nargs="+", default=[], metavar="SIZE",
                    help="remove lesion components smaller than SIZE (5mm3, 10vox; sc:200mm3 for the cord)")
    inf = p.add_argument_group("inference")
    inf.add_argument("-test-time-aug", action="store_true", help="mirror test-time augmentation (slower)")
    inf.add_argument("-tile-step-size", type=float, default=None, help="sliding-window step (default 0.5)")
    inf.add_argument("-folds", nargs="+", type=int, default=None, help="folds to ensemble (default: all)")
    inf.add_argument("-checkpoint", default=None, help="checkpoint file name (default: final, else best)")
    inf.add_argument("-device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    inf.add_argument("-threads", type=int, default=None, help="CPU threads for the network (default: all cores)")
    inf.add_argument("-precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                     help="network precision. fp32: nnU-Net's own PyTorch path, masks identical to sct_deepseg. "
                          "auto (default): bf16 on CPUs with native bf16, fp16 autocast on CUDA, else fp32 "
                          "through OpenVINO when installed (Dice >= 0.999 against fp32, see benchmarks/)")
    inf.add_argument("-backend", default="auto", choices=("auto", "torch", "openvino", "onnxruntime"),
                     help="network engine (default auto: OpenVINO on CPU when installed, unless -precision fp32)")
    inf.add_argument("-crop", default=None, choices=("none", "tiles", "body"),
                     help="region of interest: none (default) runs every tile of nnU-Net's grid; tiles skips "
                          "tiles that hold only air; body crops to the body's bounding box (normalisation "
                          "still over the whole image)")
    inf.add_argument("-fast", action="store_true",
                     help="screening mode: body crop and large tiles; several times faster than the default, "
                          "masks differ slightly (measured agreement in benchmarks/results.md)")
    inf.add_argument("-tiles", default=None, choices=("patch", "large"), help=argparse.SUPPRESS)
    inf.add_argument("-overwrite", action="store_true",
                     help="recompute inputs whose outputs are up to date (default: skip them, so an "
                          "interrupted batch resumes where it stopped)")
    qc = p.add_argument_group("quality control")
    qc.add_argument("-qc", metavar="DIR", help="write QC pictures and an index.html report into DIR")
    qc.add_argument("-qc-dataset", default=None, help="dataset name shown in the QC report")
    qc.add_argument("-qc-subject", default=None, help="subject shown in the QC report")
    misc = p.add_argument_group("other")
    misc.add_argument("-demo", action="store_true", help="offline demo: synthetic phantom → masks → Dice")
    misc.add_argument("-seed", type=int, default=None, help="phantom seed for -demo")
    misc.add_argument("-register-sct", action="store_true", help="enable the task inside SCT's sct_deepseg")
    misc.add_argument("-unregister-sct", action="store_true", help="disable it again")
    misc.add_argument("-replace-builtin", action="store_true",
                      help="with -register-sct on SCT 7.x: also route SCT's own lesion_sci_t2 to this package")
    misc.add_argument("-v", type=int, nargs="?", const=2, default=1, choices=(0, 1, 2), help="verbosity 0/1/2")
    misc.add_argument("-version", action="version", version=f"sct_task_sciseg {__version__}")
    return p


def _err(msg: str) -> None:
    print(f"sciseg: error: {msg}", file=sys.stderr)


def _task_and_tag(spec: Optional[str]):
    from .task import get_task, split_task_spec
    name, tag = split_task_spec(spec) if spec else (None, None)
    return get_task(name or None), tag


def cmd_list_tasks(models_dir: Optional[str]) -> int:
    from .task import all_tasks
    from .weights import list_installed, resolve_models_dir
    root = resolve_models_dir(models_dir)
    print(f"models folder: {root}")
    for task in all_tasks().values():
        installed = set(list_installed(task, models_dir))
        names = ", ".join(task.names)
        print(f"\n{names}\n  {task.description}\n  contrasts: {', '.join(task.contrasts)}")
        for r in task.releases:
            state = "installed" if r.tag in installed else ("embedded" if r.embedded else "available")
            default = " (default)" if r is task.default_release else ""
            pinned = "sha256 pinned" if r.sha256 else "sha256 recorded at first install"
            print(f"  {r.tag:<20} {state:<9}{default:<10} {r.description}; {pinned}")
    return 0


def cmd_install(args) -> int:
    from .weights import install
    task, tag = _task_and_tag(args.install or args.task)
    model = install(task, tag, models_dir=args.models_dir, source=args.custom_url, force=args.force,
                    quiet=args.v == 0)
    print(f"{task.name}@{model.tag}: {model.model_folder} (sha256 {model.sha256})")
    return 0


def expand_inputs(items: Sequence[str]) -> List[Path]:
    """Files as given; a folder → its NIfTI files; a BIDS dataset → its sub-*/[ses-*/]anat/*_T2w scans."""
    from .batch import expand
    return [it.path for it in expand(items)]


def cmd_segment(args) -> int:
    from .batch import expand, output_folder_given, run_batch, summary
    from .pipeline import Segmenter
    from .postprocess import PostProcessing, parse_size

    for spec in args.remove_small:
        parse_size(spec)  # fail early on a typo
    items = expand(args.i)
    if not items:
        _err(f"{' '.join(args.i)}: no NIfTI input found")
        return 1
    several = len(items) > 1 or any(Path(i).is_dir() for i in args.i)
    if args.o and several and not output_folder_given(args.o):
        _err(f"-o {args.o}: several inputs need an output folder (end it with /)")
        return 2
    if args.o and args.o.endswith(("/", os.sep)):
        try:
            Path(args.o).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _err(f"{args.o}: cannot create the output folder ({exc.strerror})")
            return 1
    task, tag = _task_and_tag(args.task)
    pp = PostProcessing(thr=args.thr, largest=bool(args.largest), fill_holes=bool(args.fill_holes),
                        remove_small=list(args.remove_small))
    segmenter = Segmenter(task, tag, models_dir=args.models_dir, device=args.device, threads=args.threads,
                          tile_step_size=args.tile_step_size, test_time_aug=args.test_time_aug or None,
                          folds=args.folds, checkpoint=args.checkpoint, postprocessing=pp, quiet=args.v == 0,
                          precision=args.precision, backend=args.backend, crop=args.crop, tiles=args.tiles,
                          fast=args.fast)
    on_result = (lambda job, result: _write_qc(args, segmenter, job.path, result)) if args.qc else None
    t0 = time.perf_counter()
    jobs = run_batch(segmenter, items, args.o, overwrite=args.overwrite, verbose=args.v, on_result=on_result,
                     error=_err)
    failures = sum(j.status == "failed" for j in jobs)
    if len(jobs) > 1 and args.v:
        print(summary(jobs, time.perf_counter() - t0))
    return 1 if failures else 0


def _write_qc(args, segmenter, path: Path, result) -> None:
    from .qc import write_qc
    write_qc(Path(args.qc), path, result.image, result.masks,
             model_tag=segmenter.model.tag if segmenter.model else "custom", task_name=segmenter.task.name,
             dataset=args.qc_dataset, subject=args.qc_subject, session=None, bids_root=None)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list_tasks:
            return cmd_list_tasks(args.models_dir)
        if args.install is not None:
            return cmd_install(args)
        if args.register_sct or args.unregister_sct:
            from . import sct
            changes = (sct.install_hook(replace_builtin=args.replace_builtin) if args.register_sct
                       else sct.uninstall_hook())
            for line in changes or ["nothing to change"]:
                print(line)
            return 0
        if args.demo:
            from .demo import run_demo
            return run_demo(args)
        if not args.i:
            build_parser().print_usage(sys.stderr)
            _err("give an input with -i (or -install-task, -list-tasks, -demo)")
            return 2
        return cmd_segment(args)
    except KeyboardInterrupt:
        _err("interrupted; no partial output was left")
        return 130
    except (SciSegError, KeyError, ValueError) as exc:
        _err(str(exc.args[0]) if exc.args else str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
