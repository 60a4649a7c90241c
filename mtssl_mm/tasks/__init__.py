from .base import BaseTask
from .detection import DetectionTask
from .segmentation import SegmentationTask

__all__ = ['BaseTask', 'DetectionTask', 'SegmentationTask']
