from .multitask_detseg import MultiTaskDetSeg
from .multitask_semi import MultiTaskSemiSupervised
from .multitask_tta import MultiTaskTTAModel, build_tta_pipeline

__all__ = ['MultiTaskDetSeg', 'MultiTaskSemiSupervised', 'MultiTaskTTAModel', 'build_tta_pipeline']
