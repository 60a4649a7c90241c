from .multitask_detseg import MultiTaskDetSeg
from .multitask_semi import MultiTaskSemiSupervised
from .state_dict_check import CheckpointKeysError
from .multitask_tta import MultiTaskTTAModel, build_tta_pipeline

__all__ = ['CheckpointKeysError', 'MultiTaskDetSeg', 'MultiTaskSemiSupervised', 'MultiTaskTTAModel', 'build_tta_pipeline']
