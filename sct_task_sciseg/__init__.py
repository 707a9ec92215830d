"""SCIseg as a verified, fast, standalone and SCT deepseg task.

Importing the package is cheap: torch and nnU-Net load only when a model runs.
"""
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "Segmenter", "SegmenterConfig", "PostProcessing", "segment", "segment_many", "get_task",
           "install", "configure_process"]


def __getattr__(name: str) -> Any:  # lazy public API (PEP 562)
    if name in ("Segmenter", "SegmenterConfig", "PostProcessing", "segment"):
        from . import pipeline
        return getattr(pipeline, name)
    if name == "segment_many":  # many scans, here or on a Dask cluster (Dask is imported only then)
        from .batch.executors import segment_many
        return segment_many
    if name == "get_task":
        from .tasks import get_task
        return get_task
    if name == "install":
        from .weights import install
        return install
    if name == "configure_process":
        from .inference.tuning import configure_process
        return configure_process
    raise AttributeError(name)
