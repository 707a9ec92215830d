"""Batches: many files, folders and BIDS datasets through one loaded model, with resume and isolation."""
from .inputs import Item, expand, is_bids, output_base_for
from .runner import Job, run_batch, summary, up_to_date
from .backends import ClusterSpec, JobqueueOptions, SlurmOptions  # noqa: E402
from .executors import segment_many  # noqa: E402 - executors build on the runner

__all__ = ["ClusterSpec", "Item", "Job", "JobqueueOptions", "SlurmOptions", "expand", "is_bids",
           "output_base_for", "run_batch", "segment_many", "summary", "up_to_date"]
