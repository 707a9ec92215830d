"""The ``sciseg`` command line: sct_deepseg's single-dash flags (importing it never imports torch)."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, Dict, NoReturn, Optional, Sequence

from .. import __version__
from ..batch.backends import BACKENDS
from ..inference.settings import check_threads, check_threshold, check_tile_step_size
from ..io.outputs import IMAGE_KINDS
from ..tasks import Task, get_task
from .help_text import epilog


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
THREADS = _checked(int, lambda v: check_threads(v, cores=0), "a whole number of threads")
TILE_STEP = _checked(float, lambda v: check_tile_step_size(_finite(v)), "a fraction of a tile")
FOLD = _checked(int, _non_negative(1000), "a fold number")
SEED = _checked(int, _non_negative(2 ** 32), "a seed")
COUNT = _checked(int, _positive(100_000), "a whole number")
RESUBMIT = _checked(int, _non_negative(100_001), "a whole number")
CHECKPOINT = _checked(str, _file_name, "a file name")


def chosen_extra_images(args: argparse.Namespace) -> tuple:
    """The kinds of extra image the flags ask for (``-soft 1`` → ``("soft",)``)."""
    return tuple(flag for flag in IMAGE_KINDS if getattr(args, flag.replace("-", "_"), 0))


TASK_FLAGS = {"-task": "task", "-install-task": "install", "-install": "install"}


def named_task(argv: Optional[Sequence[str]] = None) -> Task:
    """The task ``argv`` (default: ``sys.argv[1:]``) names, read before the full parser is built so that its
    help speaks of that task: ``-install-task NAME[@TAG]`` as an install reads it, else ``-task``, else the
    default task. Flags are read as written (``-task NAME`` or ``-task=NAME``, the last one counts, none after
    ``--``); a flag without a name leaves the choice to the others (the full parser refuses what is malformed).
    An unknown name raises :class:`~sct_task_sciseg.errors.UnknownTaskError`."""
    args = list(sys.argv[1:] if argv is None else argv)
    named: Dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg == "--":
            break
        flag, equals, value = arg.partition("=")
        if flag in TASK_FLAGS:
            following = args[i + 1] if i + 1 < len(args) else "-"
            named[TASK_FLAGS[flag]] = value if equals else ("" if following.startswith("-") else following)
    return get_task(named.get("install") or named.get("task") or None)


def build_parser(task: Optional[Task] = None) -> argparse.ArgumentParser:
    """The ``sciseg`` parser; the help's roles and names come from ``task`` (default: the default task)."""
    task = task or get_task(None)
    p = Parser(
        prog="sciseg", description=f"{task.description}, as sct_deepseg does it.",
        epilog=epilog(task), formatter_class=argparse.RawDescriptionHelpFormatter, prefix_chars="-")
    _inputs_and_models(p, task)
    _postprocessing(p, task.labels)
    _inference(p)
    _analysis_and_cluster(p, task.labels)
    _qc_and_other(p)
    return p


def _inputs_and_models(p: argparse.ArgumentParser, task) -> None:
    io = p.add_argument_group("input/output")
    io.add_argument("-i", nargs="+", metavar="FILE", help="input image(s): NIfTI files, folders or a BIDS dataset")
    io.add_argument("-o", metavar="OUT", help=f"output base (X.nii.gz → X{task.labels.outputs[0].suffix}.nii.gz) "
                    "or folder (ends with /)")
    io.add_argument("-task", default=None, metavar="NAME[@TAG]",
                    help=f"task name or alias, optionally @release tag (default: {get_task(None).name})")
    mdl = p.add_argument_group("model installation")
    mdl.add_argument("-install-task", "-install", dest="install", nargs="?", const="", metavar="NAME[@TAG]",
                     help="install (download and verify) a task's model release and exit")
    mdl.add_argument("-custom-url", metavar="URL|ZIP|FOLDER",
                     help="install from this URL, local zip or local model folder instead of the release URL")
    mdl.add_argument("-models-dir", metavar="DIR", help="where models are installed (default: $SCISEG_MODELS_DIR, "
                     "SCT's data/deepseg_models inside SCT, else the user data folder)")
    mdl.add_argument("-force", action="store_true", help="reinstall even if installed and intact")
    mdl.add_argument("-list-tasks", action="store_true", help="list tasks with installed and available releases")


def _postprocessing(p: argparse.ArgumentParser, scheme) -> None:
    parent = scheme.output(scheme.parent)
    finding = scheme.output(scheme.finding).display if scheme.finding else "finding"
    pp = p.add_argument_group("post-processing (see below)")
    pp.add_argument("-thr", type=THRESHOLD, default=None,
                    help="region probability threshold, 0 < THR < 1 (default: nnU-Net's 0.5)")
    pp.add_argument("-largest", type=int, nargs="?", const=1, default=0, choices=(0, 1),
                    help=f"1: keep the largest {parent.display} component")
    pp.add_argument("-fill-holes", type=int, nargs="?", const=1, default=0, choices=(0, 1),
                    help=f"1: fill holes in the {parent.display}")
    for kind in IMAGE_KINDS.values():
        files = " and ".join(f"<in>{o.suffix}{kind.key}.nii.gz" for o in scheme.outputs)
        pp.add_argument(f"-{kind.flag}", type=int, nargs="?", const=1, default=0, choices=(0, 1),
                        help="1: " + kind.help.format(files=files))
    pp.add_argument("-remove-small", nargs="+", default=[], metavar="SIZE",
                    help=f"remove {finding} components smaller than SIZE (5mm3, 10vox; {parent.name}:200mm3 for "
                         f"the {parent.display})")


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
                          "explicitly. bf16: CPUs with native bf16 (through OpenVINO); changes 0-1.0%% of "
                          "SCIseg's cord voxels. fp16: CUDA (emulated on CPUs without native fp16: ~80x slower, a "
                          "warning says so)")
    inf.add_argument("-backend", default="auto", choices=("auto", "torch", "openvino", "onnxruntime"),
                     help="network engine. auto (default): PyTorch (nnU-Net's own path); OpenVINO with -fast or "
                          "-precision bf16 when installed. openvino, onnxruntime: the exported network, whose "
                          "fp32 logits differ from PyTorch's and between 1 and 2 threads (see -fast)")
    inf.add_argument("-crop", default=None, choices=("none", "tiles", "body"),
                     help="region of interest (expert): none (default, -fast too) runs every tile of nnU-Net's "
                          "grid; tiles skips tiles that hold only air (masks change where the model predicts in "
                          "the air: SCIseg's cord Dice 0.893 vs exact on an axial neck volume); body crops to the "
                          "body's bounding box, normalisation still over the whole image (SCIseg's cord Dice down "
                          "to 0.945, lesion 0.92)")
    inf.add_argument("-fast", action="store_true",
                     help="screening mode: the network through OpenVINO (fp32; bf16 on CPUs with native bf16), "
                          "every tile of nnU-Net's grid; 1.5-2.1x faster than the default on 2-core CPUs (fp32). "
                          "Masks differ: SCIseg's cord Dice >= 0.9997 against exact mode on the shared and benchmark "
                          "volumes, and they change with the thread count "
                          "(benchmarks/results/precision_agreement.md)")
    inf.add_argument("-tiles", default=None, choices=("patch", "large"),
                     help="tile size (expert): patch (default, -fast too) is nnU-Net's; large fits tiles to the "
                          "image, up to 3 training patches (fewer passes; masks change: SCIseg's cord Dice 0.045-0.96 "
                          "vs exact)")
    inf.add_argument("-overwrite", action="store_true",
                     help="recompute inputs whose outputs are up to date (default: skip them, so an "
                          "interrupted batch resumes where it stopped)")


def _analysis_and_cluster(p: argparse.ArgumentParser, scheme) -> None:
    finding = scheme.output(scheme.finding) if scheme.finding else None
    an = p.add_argument_group(f"{finding.display} analysis" if finding else "analysis")
    an.add_argument("-analyze", action="store_true",
                    help=f"after segmenting, measure every {finding.display} as SCT 7.3's sct_analyze_lesion does: "
                         f"<in>{finding.suffix}_analysis.csv, <in>{finding.suffix}_label.nii.gz and a JSON sidecar "
                         f"next to the masks; a batch also writes lesion_analysis_cohort.csv under the output folder"
                    if finding else "refused: this task has no finding output to measure")
    cl = p.add_argument_group("cluster (Dask distributed; pip install \"sct_task_sciseg[cluster]\")")
    systems = [name for name, b in BACKENDS.items() if b.cluster_class]
    cl.add_argument("-scheduler", metavar="|".join(["local", "tcp://HOST:PORT", "tls://HOST:PORT", *systems]),
                    default=None,
                    help="run one task per scan on a Dask cluster: local (this machine, on 127.0.0.1 only), a "
                         "running scheduler (tls:// with your certificates from -cluster-config), or jobs of a "
                         f"batch system ({', '.join(systems)}: dask-jobqueue; TLS with certificates made for the "
                         "run; tested on SLURM); default: this process")
    cl.add_argument("-workers", type=COUNT, default=None, metavar="N",
                    help="local: worker processes (default and most: as many as cores and memory hold)")
    cl.add_argument("-dashboard", nargs="?", const=":8787", default=None, metavar="[HOST]:PORT",
                    help="serve the Dask dashboard (default: none; a bare :PORT is on 127.0.0.1)")
    cl.add_argument("-cluster-config", metavar="FILE.yaml", default=None,
                    help="Dask configuration file (jobqueue.slurm.*: queue, account, cores, memory, walltime, "
                         "job-script-prologue, ...; distributed.comm.tls.* for tls://), as "
                         "~/.config/dask/jobqueue.yaml; flags override it")
    cl.add_argument("-cluster-logs", metavar="DIR", default=None,
                    help="folder of the SLURM jobs' logs (default: sciseg_logs/ in the -o folder, else here)")
    cl.add_argument("-slurm-queue", default=None, metavar="PARTITION", help="SLURM partition")
    cl.add_argument("-slurm-account", default=None, help="SLURM account")
    cl.add_argument("-slurm-cores", type=COUNT, default=None, help="cores per job")
    cl.add_argument("-slurm-memory", default=None, metavar="SIZE", help="memory per job (e.g. 32GB)")
    cl.add_argument("-slurm-walltime", default=None, metavar="HH:MM:SS",
                    help="walltime per job (default: the configuration's, else dask-jobqueue's 00:30:00; jobs "
                         "that reach it are replaced within -slurm-resubmit)")
    cl.add_argument("-slurm-jobs", type=COUNT, default=1, metavar="N", help="number of jobs (default 1)")
    cl.add_argument("-slurm-resubmit", type=RESUBMIT, default=None, metavar="N",
                    help="jobs submitted at most to replace jobs that are gone (default: -slurm-jobs); then the "
                         "batch stops, naming the scans not done")
    cl.add_argument("-slurm-prologue", action="append", default=[], metavar="LINE",
                    help="shell line run before each worker starts (module load, venv activation); repeatable")
    ar = p.add_argument_group("array jobs (no Dask)")
    ar.add_argument("-part", default=None, metavar="K/N|array",
                    help="segment only part K of N of the inputs (every N-th from the K-th, in natural order), "
                         "0 <= K < N; array: K and N from SLURM_ARRAY_TASK_ID, _MIN and _COUNT")
    ar.add_argument("-summarize", action="store_true",
                    help="segment nothing: report every input (done or not yet) and, with -analyze, write the "
                         "cohort table from all parts")


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
    if args.threads and args.scheduler in (None, "local"):  # elsewhere, checked against the workers' cores
        try:
            check_threads(args.threads)
        except ValueError as exc:
            parser.error(f"argument -threads: {exc}")
    if args.part is not None:
        from ..batch.parts import parse_part
        if args.scheduler or args.summarize:
            parser.error("argument -part: runs in this process, without -scheduler or -summarize")
        try:
            args.part = parse_part(args.part)
        except ValueError as exc:
            parser.error(f"argument -part: {exc}")


DEMO_ACCEPTS = ("o", "seed", "models_dir", "device", "threads", "v", "demo")


def check_demo_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``-demo`` takes -o, -seed, -models-dir, -device, -threads and -v; any other flag is refused (one line)
    rather than ignored."""
    given = [a for a, v in vars(args).items() if a not in DEMO_ACCEPTS and v != parser.get_default(a)]
    if given:
        names = ", ".join("-" + a.replace("_", "-") for a in sorted(given))
        parser.error(f"-demo runs the embedded demo model on a phantom and does not take {names}; "
                     f"it accepts -o, -seed, -models-dir, -device, -threads, -v")
