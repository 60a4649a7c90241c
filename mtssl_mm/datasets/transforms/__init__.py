from .formatting import PackMultiTaskInputs
from .loading import LoadMultiTaskAnnotations

__all__ = ['LoadMultiTaskAnnotations', 'PackMultiTaskInputs']
