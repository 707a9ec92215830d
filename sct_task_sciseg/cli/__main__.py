"""``python -m sct_task_sciseg.cli`` = the ``sciseg`` command."""
import sys

from . import main

sys.exit(main())
