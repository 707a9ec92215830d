"""Batches: many files, folders and BIDS datasets through one loaded model, with resume and isolation."""
from .inputs import BIDS_PATTERNS, Item, expand, is_bids, output_base_for
from .runner import Job, run_batch, summary, up_to_date

__all__ = ["BIDS_PATTERNS", "Item", "Job", "expand", "is_bids", "output_base_for", "run_batch", "summary",
           "up_to_date"]
