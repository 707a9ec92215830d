"""What each ``sciseg`` mode does: list tasks, install, register with SCT, segment (batch, QC)."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from ..errors import SciSegError
from ..tasks import all_tasks, resolve_task
from .hints import cli_message
from .parser import chosen_extra_images


def err(msg: str) -> None:
    from ..weights.locations import redact
    print(f"sciseg: error: {redact(msg)}", file=sys.stderr)


def _hash_origin(task, release, models_dir: Optional[str], custom: bool) -> str:
    """Where the sha256 a release is checked against comes from, as -list-tasks says it."""
    from ..weights.locations import task_dir
    from ..weights.trust import TRUST_FILE, TrustRecord

    if release.sha256:
        return "sha256 pinned"
    found = TrustRecord(task_dir(task, models_dir) / TRUST_FILE).expected(release)
    if found is not None:
        return f"sha256 {found['origin']}"
    if custom:
        return ("installed from a custom source: no trusted sha256 recorded (the first install from the release "
                "URL records it)")
    return "no sha256 published: recorded at its first install from the release URL"


def cmd_list_tasks(models_dir: Optional[str]) -> int:
    from ..weights import find_installed, list_installed, resolve_models_dir
    print(f"models folder: {resolve_models_dir(models_dir)}")
    for task in all_tasks().values():
        installed = set(list_installed(task, models_dir))
        print(f"\n{', '.join(task.names)}\n  {task.description}\n  contrasts: {', '.join(task.contrasts)}")
        for r in task.releases:
            state = "installed" if r.tag in installed else ("embedded" if r.embedded else "available")
            default = " (default)" if r is task.default_release else ""
            try:
                model = find_installed(task, r.tag, models_dir) if r.tag in installed else None
            except SciSegError:
                model = None
            origin = _hash_origin(task, r, models_dir, bool(model is not None and model.custom))
            print(f"  {r.tag:<20} {state:<9}{default:<10} {r.description}; {origin}")
    print("\n(-custom-url installs are checked against a pinned or recorded sha256 when there is one, and never "
          "become the trusted record themselves)")
    return 0


def cmd_install(args) -> int:
    from ..weights import install, resolve_models_dir
    task, tag = resolve_task(args.install or args.task)
    model = install(task, tag, models_dir=args.models_dir, source=args.custom_url, force=args.force,
                    quiet=args.v == 0)
    print(f"{task.name}@{model.tag}: {model.model_folder} (sha256 {model.sha256})")
    if args.models_dir and resolve_models_dir(args.models_dir) != resolve_models_dir(None):
        print(f"note: installed in {resolve_models_dir(args.models_dir)}, not the default models folder "
              f"{resolve_models_dir(None)}: later runs need -models-dir {args.models_dir} (or "
              f"SCISEG_MODELS_DIR={args.models_dir})")
    return 0


def cmd_register_sct(args) -> int:
    from .. import sct
    changes = (sct.install_hook(replace_builtin=args.replace_builtin) if args.register_sct
               else sct.uninstall_hook())
    for line in changes or ["nothing to change"]:
        print(line)
    return 0


def _postprocessing(args):
    from ..pipeline import PostProcessing
    from ..pipeline.postprocess import parse_size
    from .preflight import UsageError

    task = resolve_task(args.task)[0]
    for spec in args.remove_small:
        try:
            parse_size(spec, task.labels)  # fail early on a typo
        except ValueError as exc:
            raise UsageError(f"argument -remove-small: {exc}") from None
    return PostProcessing(thr=args.thr, largest=bool(args.largest), fill_holes=bool(args.fill_holes),
                          remove_small=tuple(args.remove_small))


def cmd_segment(args) -> int:
    """Segment every input: all paths and headers are checked first (:mod:`.preflight`), torch and the
    model load only when something is left to run; with ``-scheduler``, one task per scan on a cluster
    (opened only when a scan is not up to date); ``-part K/N``, one slice; ``-summarize``, nothing."""
    from ..weights import resolve_models_dir
    from .preflight import plan_run

    if args.scheduler:
        from ..batch.executors import require_dask
        require_dask(args.scheduler)  # before any work: one line saying what to install
    t0 = time.perf_counter()
    _check_model_elsewhere(args)
    segmenter = _segmenter(args, args.threads)
    if args.analyze and not segmenter.task.labels.finding:
        err(f"-analyze: task {segmenter.task.name} has no finding output to analyse")
        return 2
    plan = plan_run(args, segmenter, resolve_models_dir(args.models_dir), err)
    jobs = plan.failed
    if args.part:
        from ..batch.parts import select_part
        plan.items = select_part(plan.items, args.part)
        if args.v:
            print(f"part {args.part[0]}/{args.part[1]}: {len(plan.items)} inputs")
    if plan.items and args.summarize:
        from ..batch.parts import NotRun
        jobs = plan.merge(_batch(args, segmenter, plan.items, NotRun()))
    elif plan.items and not args.scheduler:
        from ..inference.tuning import configure_process
        configure_process(args.threads, allocator=getattr(args, "own_process", False))  # main(): not ours
        jobs = plan.merge(_batch(args, segmenter, plan.items, None))
    elif plan.items and (current := _all_up_to_date(args, plan.items)) is not None:  # no cluster started
        jobs = plan.merge(_batch(args, current, plan.items, None))
    elif plan.items:
        import warnings

        from ..batch.executors import open_cluster
        # Dask's own "Port 8787 is already in use ... instead" warning: the dashboard line below gives the port
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
        with open_cluster(_cluster_spec(args), say=print if args.v else (lambda line: None)) as (executor, threads):
            if threads != args.threads:  # the workers' threads: part of the segmenter's description
                segmenter = _segmenter(args, threads)
            jobs = plan.merge(_batch(args, segmenter, plan.items, executor))
    if len(jobs) > 1 and args.v:
        from ..batch import summary
        print(summary(jobs, time.perf_counter() - t0))
    if args.v and any(j.status == "done" for j in jobs):  # -v 0 prints nothing but errors
        _warn_demo_model(segmenter)
    if args.qc and args.v and any(j.status in ("done", "skipped") for j in jobs):
        print(f"QC report: {(Path(args.qc) / 'index.html').resolve()}")
    return 1 if any(j.status == "failed" for j in jobs) else 0


def _all_up_to_date(args, items):
    """The segmenter the cluster's workers would have when every scan is up to date for it (then no cluster
    is started, no job submitted), else None."""
    from ..batch.executors import planned_threads
    from ..batch.progress import Progress
    from ..batch.runner import Job, plan
    threads = planned_threads(_cluster_spec(args))
    if threads is None or args.overwrite:
        return None
    segmenter = _segmenter(args, threads)
    jobs = [Job(it) for it in items]
    todo = plan(segmenter, jobs, args.o, False, Progress(len(jobs), False), 0, lambda m: None, args.analyze)
    return None if todo else segmenter


def _check_model_elsewhere(args) -> None:
    """Refuse to download a release that is installed in another models folder this run does not use."""
    from ..weights import find_installed, resolve_models_dir
    from ..weights.locations import known_models_dirs
    from .preflight import UsageError

    task, tag = resolve_task(args.task)
    try:
        release = task.release(tag)
    except KeyError:  # a tag of the user's own (-custom-url installs): the run says what is missing
        return
    here = resolve_models_dir(args.models_dir)
    try:
        if release.embedded or find_installed(task, release.tag, here) is not None:
            return
        elsewhere = [d for d in known_models_dirs() if d.resolve() != here.resolve()
                     and find_installed(task, release.tag, d) is not None]
    except SciSegError:  # a damaged install: the run reinstalls it and says so
        return
    if elsewhere:
        raise UsageError(f"{task.name}@{release.tag} is not installed in {here} (this run's models folder) but is "
                         f"in {elsewhere[0]}: add -models-dir {elsewhere[0]} (or set SCISEG_MODELS_DIR), or "
                         f"install it here with sciseg -install-task {task.name}@{release.tag} -models-dir {here}")


def _warn_demo_model(segmenter) -> None:
    """One console line when the masks come from a demo (phantom-trained) model."""
    from ..qc.entry import model_note
    from ..qc.index_rows import DEMO_MARK
    model = segmenter.model
    if model is not None and model_note(segmenter.task.name, model.tag, model.sha256)["model_demo"]:
        err_line = (f"sciseg: warning: {DEMO_MARK}: {segmenter.task.name}@{model.tag} is the embedded demo model "
                    f"(trained on synthetic phantoms); its masks of real scans are not usable")
        print(err_line, file=sys.stderr)


def _segmenter(args, threads: Optional[int]):
    from ..pipeline import Segmenter
    return Segmenter(args.task, models_dir=args.models_dir, device=args.device, threads=threads,
                     tile_step_size=args.tile_step_size, test_time_aug=args.test_time_aug or None,
                     folds=args.folds, checkpoint=args.checkpoint, postprocessing=_postprocessing(args),
                     quiet=args.v == 0, precision=args.precision, backend=args.backend, crop=args.crop,
                     tiles=args.tiles, fast=args.fast, extra_images=chosen_extra_images(args),
                     confidence=bool(args.qc))


def _batch(args, segmenter, items, executor) -> list:
    """The batch of ``items``, in this process (``executor`` None) or one task per scan on a cluster."""
    from ..batch import run_batch
    on_result = _QCWriter.of(args, segmenter) if args.qc else None
    jobs = run_batch(segmenter, items, args.o, overwrite=args.overwrite, verbose=args.v, on_result=on_result,
                     error=err, analyze=args.analyze, executor=executor)
    if args.analyze and args.part:
        if args.v:
            print("cohort table: not written by a part; run the same command with -summarize instead of -part "
                  "once every part is done")
    elif args.analyze and (len(items) > 1 or any(Path(i).is_dir() for i in args.i)):
        _write_cohort(args, segmenter, items, jobs)
    return jobs


def _write_cohort(args, segmenter, items, jobs) -> None:
    from ..batch.cohort import from_sidecar, write_cohort
    from ..io.naming import is_output_folder

    scans = []
    for job in jobs:
        if job.analysis is not None:
            scans.append((job.path, job.analysis.rows, job.analysis.summary))
        elif job.status == "skipped":
            found = from_sidecar(job.plan.analysis["json"]) if job.plan and job.plan.analysis else None
            if found is not None:
                scans.append((job.path, *found))
    folder = (Path(args.o) if is_output_folder(args.o)
              else Path(os.path.commonpath([str(it.path.resolve().parent) for it in items])))
    path = write_cohort(scans, folder)
    if args.v:
        print(f"cohort table: {path} ({len(scans)} scans)")


def _cluster_spec(args):
    from ..batch.backends import ClusterSpec, JobqueueOptions
    from ..io.naming import is_output_folder
    jobs = JobqueueOptions(queue=args.slurm_queue, account=args.slurm_account, cores=args.slurm_cores,
                           memory=args.slurm_memory, walltime=args.slurm_walltime, jobs=args.slurm_jobs,
                           prologue=tuple(args.slurm_prologue), config_file=args.cluster_config,
                           resubmit=args.slurm_resubmit)
    logs = args.cluster_logs or os.path.join(args.o if is_output_folder(args.o) else ".", "sciseg_logs")
    return ClusterSpec(args.scheduler, workers=args.workers, threads=args.threads, slurm=jobs,
                       dashboard=args.dashboard, logs=logs)


@dataclass(frozen=True)
class _QCWriter:
    """``-qc DIR`` for one segmented scan (picklable: on a cluster it runs on the worker that segmented it;
    the report's index is shared under a file lock)."""

    qc_dir: str
    model_tag: str
    task_name: str
    roles: object
    dataset: Optional[str] = None
    subject: Optional[str] = None
    command: Tuple[str, ...] = ()
    generated_by: Optional[dict] = None  # the outputs' GeneratedBy record: the row's parameters

    @classmethod
    def of(cls, args, segmenter) -> "_QCWriter":
        from ..qc import Roles
        return cls(os.path.abspath(args.qc), segmenter.model.tag if segmenter.model else "custom", segmenter.task.name,
                   Roles.of(segmenter.task.labels), args.qc_dataset, args.qc_subject, tuple(sys.argv),
                   segmenter.provenance(None)["GeneratedBy"][0])

    def __call__(self, job, result) -> None:
        from ..qc import write_qc
        write_qc(Path(self.qc_dir), job.path, result.image, result.masks, model_tag=self.model_tag,
                 task_name=self.task_name, dataset=self.dataset, subject=self.subject, session=None,
                 bids_root=None, roles=self.roles, analysis=job.analysis, command=self.command or None,
                 generated_by=self.generated_by, checks=job.checks or None)


__all__ = ["cli_message", "cmd_install", "cmd_list_tasks", "cmd_register_sct", "cmd_segment", "err"]
