from .multitask_metric import MultiTaskMetric

__all__ = ['MultiTaskMetric']
