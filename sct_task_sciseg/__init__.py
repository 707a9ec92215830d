"""SCIseg as a verified, fast, standalone and SCT deepseg task.

The public API is :data:`__all__`; everything else may change between versions. Importing the package is
cheap: each name loads its module on first use (torch and nnU-Net load only when a model runs)::

    from sct_task_sciseg import Segmenter, install
    install("seg_sc_lesion_t2w_sci@r20240729")
    Segmenter().segment_file("sub-01_T2w.nii.gz")
"""
from typing import Any, List

__version__ = "0.1.0"

#: public name → the module that defines it (imported on first use, PEP 562)
_PUBLIC = {
    # segmenting
    "Segmenter": "pipeline", "SegmenterConfig": "pipeline", "PostProcessing": "pipeline",
    "Segmentation": "pipeline", "segment": "pipeline",
    "segment_many": "batch.executors",  # many scans, here or on a Dask cluster (Dask is imported only then)
    # tasks and their models
    "Task": "tasks", "get_task": "tasks", "all_tasks": "tasks", "install": "weights",
    "find_installed": "weights",
    # errors: one family, each also the builtin exception a caller may already catch
    "SciSegError": "errors", "InputError": "errors", "OutputError": "errors", "ModelError": "errors",
    "InstallError": "errors", "ConfigError": "errors", "SettingError": "errors", "UnknownTaskError": "errors",
    # the process (for scripts that own theirs)
    "configure_process": "inference.tuning",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
