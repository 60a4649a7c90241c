from .multitask_dataset import MultiTaskDataset
from .samplers import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403

__all__ = ['MultiTaskDataset']
