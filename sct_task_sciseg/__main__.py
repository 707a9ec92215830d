"""``python -m sct_task_sciseg`` = the ``sciseg`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
