"""Tasks: each a model side (:class:`BaseTask`, registered in mmdet's MODELS) and a data side (:class:`TaskData`,
in :data:`TASK_DATA`). Every module of this package is imported here, so a task module dropped into
``mtssl_mm/tasks/`` registers itself without an edit anywhere else."""
import importlib
import pkgutil

from .base import BaseTask
from .cached_anchor_generator import CachedAnchorGenerator
from .detection import DetectionTask
from .detection_data import DetectionData
from .segmentation import SegmentationTask
from .segmentation_data import SegmentationData
from .task_data import TASK_DATA, TaskData, check_tasks, register_task_data, task_data

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')

__all__ = ['BaseTask', 'CachedAnchorGenerator', 'DetectionTask', 'SegmentationTask', 'TaskData', 'TASK_DATA',
           'DetectionData', 'SegmentationData', 'register_task_data', 'task_data', 'check_tasks']
