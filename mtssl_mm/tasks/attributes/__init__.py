"""Image attribute classification (BDD100K's weather, scene, time of day): a task no code outside this package knows.

Model side (:class:`AttributesTask`, ``task.py``), data side (:class:`AttributesData`, ``data.py``) and metric
(:class:`AttributeMetric`, ``metric.py``) of one task; registering them is all it takes for the dataset, the
transforms, the evaluator, the sampler, the semi-supervised wrapper, flip TTA, the ONNX export and the picture
hook to train, evaluate and deploy it beside detection and segmentation.
"""
from .data import NO_LABEL, AttributesData
from .metric import AttributeMetric
from .task import AttributesTask

__all__ = ['NO_LABEL', 'AttributeMetric', 'AttributesData', 'AttributesTask']
