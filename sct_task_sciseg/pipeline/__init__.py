"""Pipeline: the segmenter (validate → reorient → one inference → back → post-process → masks), its picklable
configuration, post-processing, provenance and the writer."""
from .config import SegmenterConfig
from .postprocess import PostProcessing
from .segmenter import Segmentation, Segmenter, segment

__all__ = ["PostProcessing", "Segmentation", "Segmenter", "SegmenterConfig", "segment"]
