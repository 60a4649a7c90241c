"""Inference on one's own images (``from mtssl_mm.apis import MultiTaskInferencer``, as ``mmdet.apis``)."""
import mtssl_mm  # noqa: F401  (registers the components, patches checkpoint loading; a no-op once imported)
from .inferencer import MultiTaskInferencer, predictor_of, set_predict_tasks
from .inputs import IMG_EXTENSIONS, collect_images, output_names
from .pipeline import InferenceDefaults, inference_pipeline

__all__ = [
    'MultiTaskInferencer', 'predictor_of', 'set_predict_tasks', 'IMG_EXTENSIONS', 'collect_images', 'output_names',
    'InferenceDefaults', 'inference_pipeline'
]
