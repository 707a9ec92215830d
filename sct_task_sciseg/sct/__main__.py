"""``python -m sct_task_sciseg.sct register|unregister|status [--replace-builtin]``."""
import sys

from .launcher import hook_command

sys.exit(hook_command())
