"""The inference pipeline: the config's test pipeline without its annotation files."""
import copy
from typing import List, Sequence, Union

from mmcv.transforms import BaseTransform

IMAGE_LOADERS = ('LoadImageFromFile', 'InferencerLoader')
# steps that read label files; an image without labels has none to read
ANNOTATION_LOADERS = ('LoadMultiTaskAnnotations', 'LoadAnnotations')
# the metainfo the model reads in predict: shapes to undo padding and resizing
REQUIRED_META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'scale_factor')


class InferenceDefaults(BaseTransform):
    """What the dataset would have given an image without labels, set just before packing.

    ``labeled_tasks=()`` (``PackMultiTaskInputs`` requires the key; the model's ``predict`` ignores it) and
    ``scale_factor=(1.0, 1.0)`` when no resize step set it (the predictions are then in the image's pixels).
    """

    def transform(self, results: dict) -> dict:
        results.setdefault('labeled_tasks', ())
        results.setdefault('scale_factor', (1.0, 1.0))
        return results


def step_name(step: Union[dict, object]) -> str:
    """The class name of a pipeline step given as a config dict (``'mmdet.Resize'`` -> ``'Resize'``) or object."""
    kind = step.get('type') if isinstance(step, dict) else type(step)
    if isinstance(kind, str):
        return kind.split('.')[-1]
    return getattr(kind, '__name__', str(kind))


def inference_pipeline(test_pipeline: Sequence[Union[dict, object]], source: str = 'the test pipeline') -> List:
    """Derive the inference pipeline from a test pipeline.

    - the image loader (``LoadImageFromFile``) becomes mmdet's ``InferencerLoader`` with the same arguments, so
      an input may be a path or a BGR ``np.ndarray`` (H, W, 3) uint8;
    - the annotation loaders (:data:`ANNOTATION_LOADERS`) are dropped;
    - :class:`InferenceDefaults` is inserted before the packing step (the last ``Pack*`` step), whose
      ``meta_keys``, if the config lists them, get :data:`REQUIRED_META_KEYS` added;
    - every other step (resizing, normalisation, unknown transforms) stays as it is.

    Args:
        test_pipeline (Sequence[dict | callable]): The config's ``test_dataloader.dataset.pipeline``.
        source (str): What ``test_pipeline`` is, for error messages (e.g. the config file).

    Returns:
        list: Steps for :class:`mmengine.dataset.Compose` (config dicts and :class:`InferenceDefaults`).

    Raises:
        ValueError: ``test_pipeline`` has no image loading step or no packing step.
    """
    names = [step_name(s) for s in test_pipeline]
    if not any(n in IMAGE_LOADERS for n in names):
        raise ValueError(f'{source}: no image loading step ({" or ".join(IMAGE_LOADERS)}) to derive the inference '
                         f'pipeline from; its steps are {names}')
    packs = [i for i, n in enumerate(names) if n.startswith('Pack')]
    if not packs:
        raise ValueError(f'{source}: no packing step (a Pack*Inputs transform) to derive the inference pipeline '
                         f'from; its steps are {names}')
    steps = []
    for i, (step, name) in enumerate(zip(test_pipeline, names)):
        step = copy.deepcopy(step)
        if name in ANNOTATION_LOADERS:
            continue
        if name == 'LoadImageFromFile':
            step = dict(
                step, type='mmdet.InferencerLoader') if isinstance(step, dict) else dict(type='mmdet.InferencerLoader')
        if i == packs[-1]:
            steps.append(InferenceDefaults())
            if isinstance(step, dict) and step.get('meta_keys') is not None:
                keys = tuple(step['meta_keys'])
                step['meta_keys'] = keys + tuple(k for k in REQUIRED_META_KEYS if k not in keys)
        steps.append(step)
    return steps
