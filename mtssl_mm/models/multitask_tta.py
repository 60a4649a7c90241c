"""Test-time augmentation for the multi-task model: flip views merged per task (``tools/test.py --tta``)."""
import copy
from typing import List, Optional, Sequence

from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel

from ..tasks.base import BaseTask, implements, lacks_hook_message
from .predictor import predictor_of

FLIP_META_KEYS = ('flip', 'flip_direction')


@MODELS.register_module()
class MultiTaskTTAModel(BaseTTAModel):
    """Run the wrapped model on every view of an image and merge each task's predictions.

    Call flow (mmengine's :class:`BaseTTAModel`)::

        data from TestTimeAug: inputs [[img1_view1, img2_view1], [img1_view2, img2_view2]], data_samples likewise
          │  per view: module.test_step(view batch)  (MultiTaskModel, or MultiTaskSemiSupervised -> its teacher)
          ▼
        merge_preds, per image and predicted task: task.merge_views(views, base, tta_cfg, keep_logits), e.g.
          det: each view's boxes flipped back, concatenated, class-wise NMS -- as mmdet's ``DetTTAModel``
          seg: each view's softmax flipped back, averaged, argmax -- as mmseg's ``SegTTAModel``
          attr: each attribute's softmax averaged, argmax

    The merged predictions go into the data sample of the un-flipped view (``flip=False``), whose ground truth
    is in the original orientation; each view's data sample must therefore carry ``flip`` and ``flip_direction``
    (:func:`build_tta_pipeline` packs them). Every task of the wrapped model that has ``merge_views`` is switched
    to :attr:`~mtssl_mm.tasks.BaseTask.keep_logits` (what the merge needs, e.g. the logits, dropped after it
    unless ``keep_logits``); a task without it keeps the un-flipped view's prediction (one warning says so).
    Checkpoints load into ``module`` (mmengine's loader unwraps a ``BaseTTAModel``).

    Args:
        module (dict | nn.Module): The model under test (``MultiTaskModel`` or ``MultiTaskSemiSupervised``).
        tta_cfg (dict, optional): Given to every task's ``merge_views``; detection reads ``nms`` (an mmcv
            ``batched_nms`` config) and ``max_per_img`` (defaults: mmdet's, the detection task's ``TTA_DEFAULTS``).
        keep_logits (bool): Keep the merged scores in the output (segmentation: ``seg_logits`` (K, H, W), 19 x 1024
            x 2048 floats per Cityscapes image; attributes: ``pred_attribute_probs``). Defaults to False.
        data_preprocessor (dict, optional): As :class:`BaseTTAModel`.
    """

    def __init__(self,
                 module,
                 tta_cfg: Optional[dict] = None,
                 keep_logits: bool = False,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        self.tta_cfg = dict(tta_cfg or {})
        self.keep_logits = bool(keep_logits)
        self._warned = set()
        for m in self.module.modules():
            if isinstance(m, BaseTask) and implements(m, 'merge_views'):
                m.keep_logits = True

    def predicted_tasks(self) -> dict:
        """name -> task module, for the tasks the wrapped model predicts."""
        predictor = predictor_of(self.module)
        return {n: predictor.tasks[n] for n in predictor.predict_tasks}

    # ------------------------------------------------------------------------------------------ merging
    def merge_preds(self, data_samples_list: Sequence[Sequence]) -> List:
        """One merged data sample per image from its views' data samples (outer: images, inner: views)."""
        tasks = self.predicted_tasks()
        return [self._merge_views(list(views), tasks) for views in data_samples_list]

    def _merge_views(self, views: list, tasks: dict):
        for v in views:
            missing = [k for k in FLIP_META_KEYS if k not in v]
            if missing:
                raise KeyError(f'MultiTaskTTAModel: the data sample of {v.metainfo.get("img_path")} has no '
                               f'{missing} metainfo; pack the views with meta_keys including {FLIP_META_KEYS} '
                               '(mtssl_mm.models.build_tta_pipeline does)')
        plain = [v for v in views if not v.flip]
        if not plain:
            raise ValueError(f'MultiTaskTTAModel: every view of {views[0].metainfo.get("img_path")} is flipped; '
                             'the TTA pipeline needs an un-flipped view (RandomFlip prob=0.)')
        base = plain[0]
        for name, task in tasks.items():
            if implements(task, 'merge_views'):
                task.merge_views(views, base, self.tta_cfg, self.keep_logits)
            elif name not in self._warned:
                self._warned.add(name)
                print_log(
                    lacks_hook_message(task, 'merge_views', 'its prediction is the un-flipped view\'s'),
                    'current',
                    level=30)
        return base


def build_tta_pipeline(test_pipeline: Sequence[dict], directions: Sequence[str] = ('horizontal', )) -> list:
    """The flip TTA pipeline made from a test pipeline: its last transform (the packer) becomes a ``TestTimeAug``.

    ``[load..., Pack(meta_keys)]`` becomes::

        [load..., TestTimeAug(transforms=[[RandomFlip(prob=1., direction=d) for d in directions]
                                          + [RandomFlip(prob=0.)],
                                          [Pack(meta_keys + ('flip', 'flip_direction'))]])]

    so every image gives ``len(directions) + 1`` views (the un-flipped one last, as mmdet's default
    ``tta_pipeline``). Ground truth loaded before the flip is flipped with the view; :class:`MultiTaskTTAModel`
    keeps the un-flipped view's.

    Args:
        test_pipeline: The config's test pipeline (a list of transform dicts ending with a ``Pack*`` transform).
        directions: Flip directions of the extra views (mmcv ``RandomFlip``: 'horizontal', 'vertical',
            'diagonal').

    Raises:
        ValueError: The pipeline does not end with a packing transform, or already has a ``RandomFlip`` or a
            ``TestTimeAug``.
    """
    pipeline = copy.deepcopy(list(test_pipeline))
    if not pipeline or 'Pack' not in str(pipeline[-1].get('type', '')):
        raise ValueError(f'build_tta_pipeline: the test pipeline must end with a packing transform (e.g. '
                         f'PackMultiTaskInputs), got {[t.get("type") for t in pipeline]}')
    clash = [t['type'] for t in pipeline if t.get('type') in ('RandomFlip', 'TestTimeAug')]
    if clash:
        raise ValueError(f'build_tta_pipeline: the test pipeline already has {clash}; write its tta_pipeline by hand')
    pack = pipeline.pop()
    if 'meta_keys' in pack:
        pack['meta_keys'] = tuple(pack['meta_keys']) + tuple(k for k in FLIP_META_KEYS if k not in pack['meta_keys'])
    flips = [dict(type='RandomFlip', prob=1., direction=d) for d in directions] + [dict(type='RandomFlip', prob=0.)]
    return pipeline + [dict(type='TestTimeAug', transforms=[flips, [pack]])]
