"""Run SCT's ``sct_deepseg`` (SCT 6.x, executed by SCT's own Python) with the models folder redirected.

    <sct python> sct_deepseg_run.py DEEPSEG_MODELS_DIR -i IN -task seg_sc_lesion_t2w_sci -o OUT

SCT keeps its models under ``<SCT>/data/deepseg_models``; pointing ``models.__deepseg_dir__`` elsewhere lets
the benchmark use its own SCIsegV2-shaped model without touching the SCT installation. The SCT console
script's launcher (one more Python start) is skipped, so SCT's times here are slightly flattering.
"""
import sys

deepseg_dir, argv = sys.argv[1], sys.argv[2:]
import spinalcordtoolbox.deepseg.models as models  # noqa: E402

models.__deepseg_dir__ = deepseg_dir
from spinalcordtoolbox.scripts import sct_deepseg  # noqa: E402
from spinalcordtoolbox.utils.sys import init_sct  # noqa: E402

init_sct()
sct_deepseg.main(argv)
