"""Semantic segmentation: DeepLabV3+ (model side ``task.py``), label maps of an annotation entry and their one
loader (data side ``data.py``) and the pseudo-label quality against withheld maps (``quality.py``)."""
from .data import SegmentationData, load_seg_map
from .quality import seg_counts, seg_metrics
from .task import SegmentationTask

__all__ = ['SegmentationData', 'SegmentationTask', 'load_seg_map', 'seg_counts', 'seg_metrics']
