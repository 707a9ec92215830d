"""The ``sciseg`` command line: sct_deepseg's single-dash flags (importing it never imports torch)."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, NoReturn

from .. import __version__
from ..inference.settings import check_threads, check_threshold, check_tile_step_size

EPILOG = """\
examples:
  sciseg -i sub-01_T2w.nii.gz                      # → sub-01_T2w_sc_seg.nii.gz, sub-01_T2w_lesion_seg.nii.gz
  sciseg -i a.nii.gz b.nii.gz -o out/              # several inputs, model loaded once
  sciseg -i bids/ -o derivatives/sciseg/ -analyze  # + lesion morphometrics and one cohort table
  sciseg -install-task seg_sc_lesion_t2w_sci       # default release (r20240729, SCIsegV2)
  sciseg -install-task seg_sc_lesion_t2w_sci@r20240130 -custom-url /media/usb/model-sci-multisite_r20240130.zip
  SCISEG_RELEASE_URL=http://mirror.hospital/sciseg sciseg -install-task seg_sc_lesion_t2w_sci
  sciseg -demo                                     # offline: phantom → masks → Dice
  sciseg -i bids/ -o bids/derivatives/sciseg/ -scheduler local             # a Dask cluster on this machine
  sciseg -i bids/ -o deriv/ -scheduler slurm -cluster-config slurm.yaml -slurm-jobs 10

post-processing (class-aware, all off by default):
  -largest      keeps the largest connected CORD component (lesions outside it are dropped with it)
  -fill-holes   fills enclosed holes of the CORD
  -remove-small drops LESION components below a size (5mm3, 10vox); prefix sc: to act on the cord
  -thr          threshold on the cord and lesion region probabilities (nnU-Net's default is 0.5)

limits (environment; checked from each header before its data are read):
  SCISEG_MAX_MODEL_VOXELS  largest image in voxels, as stored and at the model's spacing (default 2**27; 0: none)
  SCISEG_CHECK_MEMORY      0: do not refuse inputs whose estimated memory exceeds the available memory

Paths, collisions (an output that is an input, two inputs with one output) and flags are checked before
anything loads; Ctrl-C exits with 130 and SIGTERM with 143, leaving no partial output.
"""


class Parser(argparse.ArgumentParser):
    """argparse, with every refusal as one line (``sciseg: error: …``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} -h)", file=sys.stderr)
        sys.exit(2)


def _checked(kind: Callable, check: Callable, what: str) -> Callable:
    """An argparse type: ``kind`` (int/float) then ``check``; a refusal names the value and the valid range."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = what
    return convert


def _non_negative(limit: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not 0 <= value < limit:
            raise ValueError(f"{value}: use 0 to {limit - 1}")
        return value
    return check


def _positive(limit: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not 1 <= value <= limit:
            raise ValueError(f"{value}: use 1 to {limit}")
        return value
    return check


def _file_name(text: str) -> str:
    if not text or text in (".", "..") or "/" in text or "\\" in text:
        raise ValueError(f"{text!r}: a checkpoint file name inside each fold folder is needed (no path)")
    return text


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{value}: a finite number is needed")
    return value


THRESHOLD = _checked(float, check_threshold, "a probability")
THREADS = _checked(int, check_threads, "a whole number of threads")
TILE_STEP = _checked(float, lambda v: check_tile_step_size(_finite(v)), "a fraction of a tile")
FOLD = _checked(int, _non_negative(1000), "a fold number")
SEED = _checked(int, _non_negative(2 ** 32), "a seed")
COUNT = _checked(int, _positive(100_000), "a whole number")
CHECKPOINT = _checked(str, _file_name, "a file name")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="sciseg", description="Spinal cord and lesion segmentation on T2w MRI (SCIseg), as sct_deepseg does it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, prefix_chars="-")
    _inputs_and_models(p)
    _postprocessing(p)
    _inference(p)
    _analysis_and_cluster(p)
    _qc_and_other(p)
    return p


def _inputs_and_models(p: argparse.ArgumentParser) -> None:
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


def _postprocessing(p: argparse.ArgumentParser) -> None:
    pp = p.add_argument_group("post-processing (see below)")
    pp.add_argument("-thr", type=THRESHOLD, default=None,
                    help="region probability threshold, 0 < THR < 1 (default: nnU-Net's 0.5)")
    pp.add_argument("-largest", type=int, nargs="?", const=1, default=0, choices=(0, 1),
                    help="1: keep the largest cord component")
    pp.add_argument("-fill-holes", type=int, nargs="?", const=1, default=0, choices=(0, 1),
                    help="1: fill holes in the cord")
    pp.add_argument("-soft", type=int, nargs="?", const=1, default=0, choices=(0, 1),
                    help="1: also write each output's probability map, <in>_sc_seg_soft.nii.gz and "
                         "<in>_lesion_seg_soft.nii.gz (float32 in [0, 1], same inference; the mask at -thr T is "
                         "soft >= T, before post-processing)")
    pp.add_argument("-remove-small", nargs="+", default=[], metavar="SIZE",
                    help="remove lesion components smaller than SIZE (5mm3, 10vox; sc:200mm3 for the cord)")


def _inference(p: argparse.ArgumentParser) -> None:
    inf = p.add_argument_group("inference")
    inf.add_argument("-test-time-aug", action="store_true", help="mirror test-time augmentation (slower)")
    inf.add_argument("-tile-step-size", type=TILE_STEP, default=None,
                     help="sliding-window step as a fraction of the tile, 0.1 to 1 (default 0.5)")
    inf.add_argument("-folds", nargs="+", type=FOLD, default=None, help="folds to ensemble (default: all)")
    inf.add_argument("-checkpoint", type=CHECKPOINT, default=None,
                     help="checkpoint file name (default: final, else best)")
    inf.add_argument("-device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    inf.add_argument("-threads", type=THREADS, default=None,
                     help="CPU threads for the network, 1 to the number of CPUs (default: all cores); with "
                          "-scheduler: threads per worker")
    inf.add_argument("-precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                     help="network precision. auto (default) on the CPU: fp32 through nnU-Net's own PyTorch path, "
                          "the masks of sct_deepseg, the same bits at any -threads and on one-thread cluster "
                          "workers; on CUDA nnU-Net's own fp16 autocast (as SCT). fp32: the same exact mode, "
                          "explicitly. bf16: CPUs with native bf16 (through OpenVINO); changes 0-1.0%% of the "
                          "cord's voxels. fp16: CUDA (emulated on CPUs without native fp16: ~80x slower, a "
                          "warning says so)")
    inf.add_argument("-backend", default="auto", choices=("auto", "torch", "openvino", "onnxruntime"),
                     help="network engine. auto (default): PyTorch (nnU-Net's own path); OpenVINO with -fast or "
                          "-precision bf16 when installed. openvino, onnxruntime: the exported network, whose "
                          "fp32 logits differ from PyTorch's and between 1 and 2 threads (see -fast)")
    inf.add_argument("-crop", default=None, choices=("none", "tiles", "body"),
                     help="region of interest (expert): none (default, -fast too) runs every tile of nnU-Net's "
                          "grid; tiles skips tiles that hold only air (masks change where the model predicts in "
                          "the air: cord Dice 0.893 vs exact on an axial neck volume); body crops to the body's "
                          "bounding box, normalisation still over the whole image (cord Dice down to 0.945, "
                          "lesion 0.92)")
    inf.add_argument("-fast", action="store_true",
                     help="screening mode: the network through OpenVINO (fp32; bf16 on CPUs with native bf16), "
                          "every tile of nnU-Net's grid; 1.5-2.1x faster than the default on 2-core CPUs (fp32). "
                          "Masks differ: cord Dice >= 0.9997 against exact mode on the shared and benchmark "
                          "volumes, and they change with the thread count "
                          "(benchmarks/results/precision_agreement.md)")
    inf.add_argument("-tiles", default=None, choices=("patch", "large"),
                     help="tile size (expert): patch (default, -fast too) is nnU-Net's; large fits tiles to the "
                          "image, up to 3 training patches (fewer passes; masks change: cord Dice 0.045-0.96 vs "
                          "exact)")
    inf.add_argument("-overwrite", action="store_true",
                     help="recompute inputs whose outputs are up to date (default: skip them, so an "
                          "interrupted batch resumes where it stopped)")


def _analysis_and_cluster(p: argparse.ArgumentParser) -> None:
    an = p.add_argument_group("lesion analysis")
    an.add_argument("-analyze", action="store_true",
                    help="after segmenting, measure every lesion as SCT 7.3's sct_analyze_lesion does: "
                         "<in>_lesion_seg_analysis.csv, <in>_lesion_seg_label.nii.gz and a JSON sidecar next to "
                         "the masks; a batch also writes lesion_analysis_cohort.csv under the output folder")
    cl = p.add_argument_group("cluster (Dask distributed; pip install \"sct_task_sciseg[cluster]\")")
    cl.add_argument("-scheduler", metavar="local|tcp://HOST:PORT|slurm", default=None,
                    help="run one task per scan on a Dask cluster: local (this machine), a running scheduler, "
                         "or SLURM jobs (dask-jobqueue); default: this process")
    cl.add_argument("-workers", type=COUNT, default=None, metavar="N",
                    help="local: worker processes (default: as many as cores and memory allow)")
    cl.add_argument("-cluster-config", metavar="FILE.yaml", default=None,
                    help="Dask configuration file (jobqueue.slurm.*: queue, account, cores, memory, walltime, "
                         "job-script-prologue, ...), as ~/.config/dask/jobqueue.yaml; flags override it")
    cl.add_argument("-slurm-queue", default=None, metavar="PARTITION", help="SLURM partition")
    cl.add_argument("-slurm-account", default=None, help="SLURM account")
    cl.add_argument("-slurm-cores", type=COUNT, default=None, help="cores per job")
    cl.add_argument("-slurm-memory", default=None, metavar="SIZE", help="memory per job (e.g. 32GB)")
    cl.add_argument("-slurm-walltime", default=None, metavar="HH:MM:SS", help="walltime per job")
    cl.add_argument("-slurm-jobs", type=COUNT, default=1, metavar="N", help="number of jobs (default 1)")
    cl.add_argument("-slurm-prologue", action="append", default=[], metavar="LINE",
                    help="shell line run before each worker starts (module load, venv activation); repeatable")


def _qc_and_other(p: argparse.ArgumentParser) -> None:
    qc = p.add_argument_group("quality control")
    qc.add_argument("-qc", metavar="DIR", help="write QC pictures and an index.html report into DIR")
    qc.add_argument("-qc-dataset", default=None, help="dataset name shown in the QC report")
    qc.add_argument("-qc-subject", default=None, help="subject shown in the QC report")
    misc = p.add_argument_group("other")
    misc.add_argument("-demo", action="store_true", help="offline demo: synthetic phantom → masks → Dice")
    misc.add_argument("-seed", type=SEED, default=None, help="phantom seed for -demo (default 2024: same "
                      "phantom, masks and Dice on every run; 0 to 2**32 - 1); -demo writes into -o DIR, else a "
                      "new temporary folder")
    misc.add_argument("-register-sct", action="store_true", help="enable the task inside SCT's sct_deepseg")
    misc.add_argument("-unregister-sct", action="store_true", help="disable it again")
    misc.add_argument("-replace-builtin", action="store_true",
                      help="with -register-sct on SCT 7.x: also route SCT's own lesion_sci_t2 to this package")
    misc.add_argument("-v", type=int, nargs="?", const=2, default=1, choices=(0, 1, 2), help="verbosity 0/1/2")
    misc.add_argument("-version", action="version", version=f"sct_task_sciseg {__version__}")


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks that involve more than one value (argparse checks each value on its own)."""
    if args.folds and len(set(args.folds)) != len(args.folds):
        parser.error(f"argument -folds: {' '.join(map(str, args.folds))}: each fold once")
