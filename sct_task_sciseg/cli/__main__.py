"""``python -m sct_task_sciseg.cli`` = the ``sciseg`` command (it owns the process)."""
from . import console_main

console_main()
