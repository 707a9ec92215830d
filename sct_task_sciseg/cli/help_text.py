"""The ``sciseg -h`` epilog, written for one task: usage examples with its name, release, outputs and contrast,
the post-processing roles of its label scheme, and the environment variables."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ..environment import epilog as config_epilog
from ..tasks import Task, get_task

Example = Tuple[str, str]  # (command, comment; "" for none)

NOTES = """\
post-processing (class-aware, all off by default; {task}):
  -largest      keeps the largest connected {PARENT} component ({findings} outside it are dropped with it)
  -fill-holes   fills enclosed holes of the {PARENT}
  -remove-small drops {FINDING} components below a size (5mm3, 10vox); prefix {parent_name}: to act on the {parent}
  -thr          threshold on the {outputs} region probabilities (nnU-Net's default is 0.5)

{environment}

Limits are checked from each header before its data are read. Paths, collisions (an output that is an input,
two inputs with one output) and flags are checked before anything loads; Ctrl-C exits with 130 and SIGTERM
with 143, leaving no partial output.
"""


def _aligned(lines: Sequence[Example], least: int = 0) -> str:
    """The examples, one a line, their comments in one column (at least ``least`` characters from the left)."""
    width = max([least] + [len(command) for command, note in lines if note])
    return "\n".join(f"  {command:<{width}}  # {note}" if note else f"  {command}" for command, note in lines)


def examples(task: Task) -> str:
    """Usage examples for ``task``: its example scan and output names, its releases; every segmenting command
    names it with ``-task`` unless it is the default task."""
    default = get_task(None)
    run = "sciseg" if task.name == default.name else f"sciseg -task {task.name}"
    scheme = task.labels
    scan = f"sub-01{task.bids_suffixes[0]}"
    finding = scheme.output(scheme.finding).display if scheme.finding else None
    analyze = " -analyze" if finding else ""
    release = task.default_release
    offline = ([r for r in task.releases if not r.embedded] or [release])[-1]
    demo = "" if task.name == default.name else " demo of the default task"
    basics = [
        (f"{run} -i {scan}.nii.gz", "→ " + ", ".join(f"{scan}{o.suffix}.nii.gz" for o in scheme.outputs)),
        (f"{run} -i a.nii.gz b.nii.gz -o out/", "several inputs, model loaded once"),
        *([(f"{run} -i bids/ -o derivatives/sciseg/ -analyze", f"+ {finding} morphometrics and one cohort table")]
          if finding else []),
        (f"sciseg -install-task {task.name}", f"default release ({release.tag}, {release.description.split(' (')[0]})"),
        (f"sciseg -install-task {task.name}@{offline.tag} -custom-url /media/usb/{offline.asset}", ""),
        (f"SCISEG_RELEASE_URL=http://mirror.hospital/sciseg sciseg -install-task {task.name}", ""),
        ("sciseg -demo", f"offline{demo}: phantom → masks → Dice"),
    ]
    batches = [
        (f"{run} -i bids/ -o bids/derivatives/sciseg/ -scheduler local", "a Dask cluster on this machine"),
        (f"{run} -i bids/ -o deriv/ -scheduler slurm -cluster-config slurm.yaml -slurm-jobs 10", ""),
        (f'sbatch --array=0-9 --wrap "{run} -i bids/ -o deriv/ -part array"', "no Dask: one slice per array task"),
        (f"{run} -i bids/ -o deriv/ -summarize{analyze}", "then: summary" + (" and cohort table" if finding else "")),
    ]
    first_column = 47  # comments of the first examples line up here, or further right for longer commands
    return f"examples:\n{_aligned(basics, least=first_column)}\n{_aligned(batches)}\n"


def epilog(task: Optional[Task] = None) -> str:
    """The ``-h`` epilog of ``task`` (default: the default task): :func:`examples`, the post-processing roles of
    its label scheme and the environment variables of :mod:`sct_task_sciseg.environment`."""
    task = task or get_task(None)
    scheme = task.labels
    parent = scheme.output(scheme.parent)
    finding = scheme.output(scheme.finding).display if scheme.finding else "finding"
    notes = NOTES.format(task=task.name, PARENT=parent.display.upper(), parent=parent.display,
                         parent_name=parent.name, FINDING=finding.upper(), findings=f"{finding}s",
                         outputs=" and ".join(o.display for o in scheme.outputs), environment=config_epilog())
    return f"{examples(task)}\n{notes}"
