"""The second task of the tests, as plain data a child process can import: a label map (labels 3 and 4, outputs
"tissue" and "spot") and a contrast (T1w) that differ from SCIseg's. :func:`process_env` makes it an installed
task of a child process, through a real entry point of the ``sct_task_sciseg.tasks`` group."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

from sct_task_sciseg.tasks import ENTRY_POINT_GROUP, LabelScheme, Output, Release, Task

LABELS = {"background": 0, "tissue": [3, 4], "spot": 4}

OTHER = Task(
    name="seg_tissue_spot_test",
    aliases=(),
    description="test task: tissue with spots",
    long_description="A task whose label map and contrast (T1w) differ from SCIseg's.",
    contrasts=("t1",),
    citation="none",
    labels=LabelScheme(
        outputs=(Output("tissue", (3, 4), "_tissue_seg", title="tissue"),
                 Output("spot", (4,), "_spot_seg", title="spot")),
        parent="tissue", finding="spot"),
    releases=(Release("t1", "tissue_t1.zip", "relabelled phantom model"),),
    base_url="http://127.0.0.1:9/none",
    dataset_labels=LABELS,
)


def process_env(folder: Path) -> Dict[str, str]:
    """The environment of a child process that has :data:`OTHER` installed: the metadata of a distribution
    whose entry point is this module's ``OTHER``, written into ``folder``, put on ``PYTHONPATH`` with this
    module's folder."""
    dist = folder / "sciseg_second_task-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sciseg-second-task\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{OTHER.name} = {__name__}:OTHER\n")
    paths = [str(folder), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
