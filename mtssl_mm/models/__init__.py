from .multitask_detseg import MultiTaskDetSeg
from .multitask_semi import MultiTaskSemiSupervised

__all__ = ['MultiTaskDetSeg', 'MultiTaskSemiSupervised']
