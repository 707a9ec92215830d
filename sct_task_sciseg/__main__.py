"""``python -m sct_task_sciseg`` = the ``sciseg`` command (it owns the process)."""
from .cli import console_main

if __name__ == "__main__":
    console_main()
