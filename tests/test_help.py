"""``sciseg -h`` speaks of the task the command line names (``-task``, ``-install-task``): its outputs, roles,
example scans and releases; without one, of the default task (SCIseg)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import run_cli
from second_task import OTHER, process_env
from sct_task_sciseg.cli import main
from sct_task_sciseg.cli.help_text import epilog
from sct_task_sciseg.cli.parser import build_parser, named_task
from sct_task_sciseg.errors import UnknownTaskError
from sct_task_sciseg.tasks import SCISEG, LabelScheme, registry

SCISEG_EXAMPLES = """\
examples:
  sciseg -i sub-01_T2w.nii.gz                      # → sub-01_T2w_sc_seg.nii.gz, sub-01_T2w_lesion_seg.nii.gz
  sciseg -i a.nii.gz b.nii.gz -o out/              # several inputs, model loaded once
  sciseg -i bids/ -o derivatives/sciseg/ -analyze  # + lesion morphometrics and one cohort table
  sciseg -install-task seg_sc_lesion_t2w_sci       # default release (r20240729, SCIsegV2)
  sciseg -install-task seg_sc_lesion_t2w_sci@r20240130 -custom-url /media/usb/model-sci-multisite_r20240130.zip
  SCISEG_RELEASE_URL=http://mirror.hospital/sciseg sciseg -install-task seg_sc_lesion_t2w_sci
  sciseg -demo                                     # offline: phantom → masks → Dice
  sciseg -i bids/ -o bids/derivatives/sciseg/ -scheduler local       # a Dask cluster on this machine
  sciseg -i bids/ -o deriv/ -scheduler slurm -cluster-config slurm.yaml -slurm-jobs 10
  sbatch --array=0-9 --wrap "sciseg -i bids/ -o deriv/ -part array"  # no Dask: one slice per array task
  sciseg -i bids/ -o deriv/ -summarize -analyze                      # then: summary and cohort table

post-processing (class-aware, all off by default; seg_sc_lesion_t2w_sci):
  -largest      keeps the largest connected CORD component (lesions outside it are dropped with it)
"""


@pytest.fixture
def two_tasks(monkeypatch):
    """SCIseg and the second task are the installed tasks."""
    monkeypatch.setattr(registry, "all_tasks", lambda: {t.name: t for t in (SCISEG, OTHER)})


def test_default_help_examples_are_sciseg_s():
    assert epilog().startswith(SCISEG_EXAMPLES) and epilog(SCISEG) == epilog()


def test_help_roles_come_from_the_task():
    text = epilog(OTHER)
    assert "largest connected TISSUE component (spots outside" in text and "prefix tissue: to act on the tissue" in text
    assert "cord" not in text.split("post-processing")[1].split("environment")[0]
    help_text = " ".join(build_parser(OTHER).format_help().split())
    assert "1: keep the largest tissue component" in help_text and "1: fill holes in the tissue" in help_text
    assert "<in>_tissue_seg_soft.nii.gz and <in>_spot_seg_soft.nii.gz" in help_text
    assert "remove spot components smaller than SIZE (5mm3, 10vox; tissue:200mm3 for the tissue)" in help_text
    assert "spot analysis: -analyze after segmenting, measure every spot as" in help_text
    assert "<in>_spot_seg_analysis.csv, <in>_spot_seg_label.nii.gz" in help_text
    assert f"(default: {SCISEG.name})" in help_text and OTHER.description in help_text  # without -task: SCIseg


def test_help_examples_come_from_the_task():
    text = epilog(OTHER)
    examples = text.split("post-processing")[0]
    run = f"sciseg -task {OTHER.name}"
    column = examples.index("# →", examples.index("\n  ")) - examples.index("\n  ")  # one column of comments
    first = f"\n  {run} -i sub-01_T1w.nii.gz".ljust(column)
    assert first + "# → sub-01_T1w_tissue_seg.nii.gz, sub-01_T1w_spot_seg.nii.gz\n" in examples
    analyze = f"\n  {run} -i bids/ -o derivatives/sciseg/ -analyze".ljust(column)
    assert analyze + "# + spot morphometrics and one cohort table\n" in examples
    assert f"  sciseg -install-task {OTHER.name}@t1 -custom-url /media/usb/tissue_t1.zip\n" in examples
    assert "# default release (t1, relabelled phantom model)\n" in examples
    assert "# offline demo of the default task: phantom → masks → Dice\n" in examples
    assert f'--wrap "{run} -i bids/ -o deriv/ -part array"' in examples
    assert [line for line in examples.splitlines()[1:] if "-i " in line and run not in line] == []
    for sciseg_word in ("lesion", "cord", "T2w", "_sc_seg", SCISEG.name, "r20240729", "SCIseg"):
        assert sciseg_word not in examples, sciseg_word


def test_help_of_a_task_without_finding_offers_no_analysis():
    task = replace(OTHER, labels=LabelScheme(outputs=OTHER.labels.outputs[:1], parent="tissue"))
    text = build_parser(task).format_help()
    assert "-analyze" not in text.split("examples:")[1] and "cohort" not in text.split("examples:")[1]
    assert "analysis:\n  -analyze" in text and "refused: this task has no finding output to measure" in text
    assert "# → sub-01_T1w_tissue_seg.nii.gz\n" in text


def test_the_task_is_read_from_the_command_line_before_the_parser(two_tasks):
    assert named_task([]) is SCISEG and named_task(["-i", "a.nii.gz", "-thr", "0.3"]) is SCISEG
    assert named_task(["-i", "a.nii.gz", "-task", f"{OTHER.name}@t1", "-v"]) is OTHER
    assert named_task(["-install-task", OTHER.name]) is OTHER and named_task(["-install", "-task", OTHER.name]) is OTHER
    assert named_task(["-install-task", OTHER.name, "-task", SCISEG.name]) is OTHER  # as cmd_install reads them
    assert named_task(["-task", "lesion_sci_t2"]) is SCISEG and named_task([f"-task={OTHER.name}"]) is OTHER
    assert named_task(["-i", "a.nii.gz", "-task"]) is SCISEG  # malformed: the full parser refuses it
    with pytest.raises(UnknownTaskError, match="unknown task 'nope'"):
        named_task(["-task", "nope@r1"])


def test_help_in_process_is_the_named_task_s(two_tasks, capsys):
    with pytest.raises(SystemExit) as done:
        main(["-task", OTHER.name, "-h"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"sciseg -task {OTHER.name} -i sub-01_T1w.nii.gz" in out and "_lesion_seg" not in out
    assert main(["-task", "nope", "-h"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"sciseg: error: unknown task 'nope' (known: lesion_sci_t2, {SCISEG.name}, {OTHER.name})"]


def test_help_of_an_installed_second_task_as_a_process(tmp_path):
    env = dict(process_env(tmp_path / "site"), COLUMNS="100")
    other, default = run_cli("-task", OTHER.name, "-h", env=env), run_cli("-h", env=env)
    assert (other.returncode, other.stderr, default.returncode, default.stderr) == (0, "", 0, "")
    text, words = other.stdout, " ".join(other.stdout.split())
    assert f"  sciseg -task {OTHER.name} -i sub-01_T1w.nii.gz" in text
    assert "# → sub-01_T1w_tissue_seg.nii.gz, sub-01_T1w_spot_seg.nii.gz" in text
    assert "largest connected TISSUE component (spots outside it" in text and "1: keep the largest tissue" in words
    assert "remove spot components smaller than SIZE" in words and OTHER.description in words
    for sciseg_word in ("_sc_seg", "_lesion_seg", "_T2w", "CORD", "LESION", "r20240729", "cord and lesion"):
        assert sciseg_word not in text, sciseg_word
    assert "lesion" not in text.split("\nexamples:")[1].split("\nenvironment")[0]
    assert "  sciseg -i sub-01_T2w.nii.gz" in default.stdout and SCISEG.description in " ".join(default.stdout.split())
    assert "# → sub-01_T2w_sc_seg.nii.gz, sub-01_T2w_lesion_seg.nii.gz" in default.stdout
    assert "largest connected CORD component (lesions outside it" in default.stdout and OTHER.name not in default.stdout
    listed = run_cli("-list-tasks", env=env)
    assert listed.returncode == 0 and f"\n{OTHER.name}\n  {OTHER.description}\n" in listed.stdout
