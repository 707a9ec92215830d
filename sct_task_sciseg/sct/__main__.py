"""``python -m sct_task_sciseg.sct register|unregister|status [--replace-builtin]``."""
import sys

from .launcher import _main

sys.exit(_main())
