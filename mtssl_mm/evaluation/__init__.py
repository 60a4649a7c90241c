from .multitask_metric import MultiTaskMetric
from .semseg_metric import PixelAccSemSegMetric

__all__ = ['MultiTaskMetric', 'PixelAccSemSegMetric']
