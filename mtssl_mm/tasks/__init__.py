from .base import BaseTask
from .cached_anchor_generator import CachedAnchorGenerator
from .detection import DetectionTask
from .segmentation import SegmentationTask

__all__ = ['BaseTask', 'CachedAnchorGenerator', 'DetectionTask', 'SegmentationTask']
