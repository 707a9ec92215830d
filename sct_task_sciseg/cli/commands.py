"""What each ``sciseg`` mode does: list tasks, install, register with SCT, segment (batch, QC)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

from ..tasks import all_tasks, resolve_task
from .hints import cli_message


def err(msg: str) -> None:
    print(f"sciseg: error: {msg}", file=sys.stderr)


def cmd_list_tasks(models_dir: Optional[str]) -> int:
    from ..weights import list_installed, resolve_models_dir
    print(f"models folder: {resolve_models_dir(models_dir)}")
    for task in all_tasks().values():
        installed = set(list_installed(task, models_dir))
        print(f"\n{', '.join(task.names)}\n  {task.description}\n  contrasts: {', '.join(task.contrasts)}")
        for r in task.releases:
            state = "installed" if r.tag in installed else ("embedded" if r.embedded else "available")
            default = " (default)" if r is task.default_release else ""
            pinned = "sha256 pinned" if r.sha256 else "sha256 recorded at first install"
            print(f"  {r.tag:<20} {state:<9}{default:<10} {r.description}; {pinned}")
    return 0


def cmd_install(args) -> int:
    from ..weights import install
    task, tag = resolve_task(args.install or args.task)
    model = install(task, tag, models_dir=args.models_dir, source=args.custom_url, force=args.force,
                    quiet=args.v == 0)
    print(f"{task.name}@{model.tag}: {model.model_folder} (sha256 {model.sha256})")
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

    task = resolve_task(args.task)[0]
    for spec in args.remove_small:
        parse_size(spec, task.labels)  # fail early on a typo
    return PostProcessing(thr=args.thr, largest=bool(args.largest), fill_holes=bool(args.fill_holes),
                          remove_small=tuple(args.remove_small))


def _output_folder_problem(args, items) -> Optional[int]:
    from ..io.naming import is_output_folder
    several = len(items) > 1 or any(Path(i).is_dir() for i in args.i)
    if args.o and several and not is_output_folder(args.o):
        err(f"-o {args.o}: several inputs need an output folder (end it with /)")
        return 2
    if args.o and args.o.endswith(("/", os.sep)):
        try:
            Path(args.o).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            err(f"{args.o}: cannot create the output folder ({exc.strerror})")
            return 1
    return None


def cmd_segment(args) -> int:
    from ..batch import expand, run_batch, summary
    from ..inference.tuning import configure_process
    from ..pipeline import Segmenter

    pp = _postprocessing(args)
    items = expand(args.i)
    if not items:
        err(f"{' '.join(args.i)}: no NIfTI input found")
        return 1
    problem = _output_folder_problem(args, items)
    if problem is not None:
        return problem
    segmenter = Segmenter(args.task, models_dir=args.models_dir, device=args.device, threads=args.threads,
                          tile_step_size=args.tile_step_size, test_time_aug=args.test_time_aug or None,
                          folds=args.folds, checkpoint=args.checkpoint, postprocessing=pp, quiet=args.v == 0,
                          precision=args.precision, backend=args.backend, crop=args.crop, tiles=args.tiles,
                          fast=args.fast, soft=bool(args.soft))
    configure_process(args.threads)
    on_result = (lambda job, result: _write_qc(args, segmenter, job.path, result)) if args.qc else None
    t0 = time.perf_counter()
    jobs = run_batch(segmenter, items, args.o, overwrite=args.overwrite, verbose=args.v, on_result=on_result,
                     error=err)
    if len(jobs) > 1 and args.v:
        print(summary(jobs, time.perf_counter() - t0))
    return 1 if any(j.status == "failed" for j in jobs) else 0


def _write_qc(args, segmenter, path: Path, result) -> None:
    from ..qc import Roles, write_qc
    write_qc(Path(args.qc), path, result.image, result.masks,
             model_tag=segmenter.model.tag if segmenter.model else "custom", task_name=segmenter.task.name,
             dataset=args.qc_dataset, subject=args.qc_subject, session=None, bids_root=None,
             roles=Roles.of(segmenter.task.labels), command=sys.argv,
             generated_by=segmenter.provenance(None)["GeneratedBy"][0])


__all__ = ["cli_message", "cmd_install", "cmd_list_tasks", "cmd_register_sct", "cmd_segment", "err"]
