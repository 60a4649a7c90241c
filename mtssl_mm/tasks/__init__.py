"""Tasks: each a subpackage with a model side (:class:`BaseTask`, registered in mmdet's MODELS), a data side
(:class:`TaskData`, in :data:`TASK_DATA`) registered as a pair, its pseudo-label quality and metric glue
(``detection/``, ``segmentation/``, ``attributes/``). Every module of this package is imported here, so a task
package dropped into ``mtssl_mm/tasks/`` registers itself without an edit anywhere else."""
import importlib
import pkgutil

from .attributes import AttributesData, AttributesTask
from .base import BaseTask
from .detection import CachedAnchorGenerator, DetectionData, DetectionTask
from .segmentation import SegmentationData, SegmentationTask
from .task_data import TASK_DATA, TaskData, check_tasks, register_task_data, task_data

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')

__all__ = [
    'BaseTask', 'TaskData', 'TASK_DATA', 'register_task_data', 'task_data', 'check_tasks', 'DetectionTask',
    'DetectionData', 'CachedAnchorGenerator', 'SegmentationTask', 'SegmentationData', 'AttributesTask', 'AttributesData'
]
