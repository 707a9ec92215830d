"""``python -m sct_task_sciseg.qc DIR``: re-render ``DIR/index.html`` from its entries."""
import sys

from .report import main

sys.exit(main())
