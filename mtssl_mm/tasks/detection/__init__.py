"""Object detection: RetinaNet on FPN (model side ``task.py``), boxes of an annotation entry (data side ``data.py``),
cached anchors (``anchors.py``) and the pseudo-label quality against withheld boxes (``quality.py``)."""
from .anchors import CachedAnchorGenerator
from .data import DetectionData
from .quality import box_counts, box_metrics
from .task import DetectionTask, check_assigner, flatten_level

__all__ = [
    'CachedAnchorGenerator', 'DetectionData', 'DetectionTask', 'box_counts', 'box_metrics', 'check_assigner',
    'flatten_level'
]
