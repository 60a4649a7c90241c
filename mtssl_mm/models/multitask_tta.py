"""Test-time augmentation for the multi-task model: flip views merged per task (``tools/test.py --tta``)."""
import copy
from typing import List, Optional, Sequence

import torch
from mmcv.ops import batched_nms
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_flip
from mmengine.model import BaseTTAModel
from mmengine.structures import InstanceData, PixelData

from ..tasks.segmentation import SegmentationTask

FLIP_META_KEYS = ('flip', 'flip_direction')
_FLIP_DIMS = {'horizontal': (-1, ), 'vertical': (-2, ), 'diagonal': (-2, -1)}


@MODELS.register_module()
class MultiTaskTTAModel(BaseTTAModel):
    """Run the wrapped model on every view of an image and merge each task's predictions.

    Call flow (mmengine's :class:`BaseTTAModel`)::

        data from TestTimeAug: inputs [[img1_view1, img2_view1], [img1_view2, img2_view2]], data_samples likewise
          │  per view: module.test_step(view batch)  (MultiTaskDetSeg, or MultiTaskSemiSupervised -> its teacher)
          ▼
        merge_preds, per image:
          det: each view's boxes (original-image pixels) flipped back, concatenated, class-wise NMS
               (``tta_cfg.nms``), the ``tta_cfg.max_per_img`` best kept -- as mmdet's ``DetTTAModel``
          seg: each view's logits (K, H, W) -> softmax, flipped back, averaged over the views -> argmax,
               as mmseg's ``SegTTAModel`` (which averages softmax scores too)

    The merged predictions go into the data sample of the un-flipped view (``flip=False``), whose ground truth
    (``gt_sem_seg``, ``gt_instances``) is in the original orientation; each view's data sample must therefore
    carry ``flip`` and ``flip_direction`` (:func:`build_tta_pipeline` packs them). The wrapped model's
    :class:`SegmentationTask` modules are switched to :attr:`~SegmentationTask.keep_logits`; the logits are
    dropped after the merge unless ``keep_seg_logits``. Checkpoints load into ``module`` (mmengine's loader
    unwraps a ``BaseTTAModel``), so a plain model checkpoint works as ``load_from``.

    Args:
        module (dict | nn.Module): The model under test (``MultiTaskDetSeg`` or ``MultiTaskSemiSupervised``).
        tta_cfg (dict, optional): ``nms`` (an mmcv ``batched_nms`` config) and ``max_per_img`` for the merged
            boxes. Defaults to mmdet's ``dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)``.
        keep_seg_logits (bool): Keep the averaged softmax scores as ``seg_logits`` (K, H, W) in the output.
            Defaults to False (memory: 19 x 1024 x 2048 floats per Cityscapes image).
        data_preprocessor (dict, optional): As :class:`BaseTTAModel`.
    """

    def __init__(self,
                 module,
                 tta_cfg: Optional[dict] = None,
                 keep_seg_logits: bool = False,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        self.tta_cfg = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
        self.tta_cfg.update(tta_cfg or {})
        self.keep_seg_logits = bool(keep_seg_logits)
        for m in self.module.modules():
            if isinstance(m, SegmentationTask):
                m.keep_logits = True

    # ------------------------------------------------------------------------------------------ merging
    def merge_preds(self, data_samples_list: Sequence[Sequence]) -> List:
        """One merged data sample per image from its views' data samples (outer: images, inner: views)."""
        return [self._merge_views(list(views)) for views in data_samples_list]

    def _merge_views(self, views: list):
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
        if all('pred_instances' in v for v in views):
            base.pred_instances = self.merge_instances(views)
        if any('seg_logits' in v or 'pred_sem_seg' in v for v in views):
            probs = self.merge_seg_probs(views)
            base.pred_sem_seg = PixelData(sem_seg=probs.argmax(dim=0, keepdim=True))
            if self.keep_seg_logits:
                base.seg_logits = PixelData(data=probs)
            elif 'seg_logits' in base:
                del base.seg_logits
        return base

    def merge_instances(self, views: list) -> InstanceData:
        """Boxes of all views in the original orientation, then class-wise NMS; ``max_per_img`` best kept.

        Each view's ``pred_instances.bboxes`` (N, 4) are pixels of the original image (the model rescales them),
        so a flipped view's boxes are flipped back within ``ori_shape``.
        """
        boxes, scores, labels = [], [], []
        for v in views:
            b = v.pred_instances.bboxes
            if v.flip:
                b = bbox_flip(b, img_shape=v.ori_shape, direction=v.flip_direction)
            boxes.append(b)
            scores.append(v.pred_instances.scores)
            labels.append(v.pred_instances.labels)
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        out = InstanceData()
        if boxes.numel() == 0:
            out.bboxes, out.scores, out.labels = boxes.reshape(0, 4), scores, labels
            return out
        dets, keep = batched_nms(boxes, scores, labels, copy.deepcopy(self.tta_cfg['nms']))
        n = int(self.tta_cfg['max_per_img'])
        out.bboxes, out.scores, out.labels = dets[:n, :4], dets[:n, 4], labels[keep][:n]
        return out

    @staticmethod
    def merge_seg_probs(views: list) -> torch.Tensor:
        """Mean over the views of ``softmax(seg_logits)``, each flipped back: (K, H, W) float.

        Raises:
            KeyError: A view has a segmentation prediction without its logits (``keep_logits`` was not set on the
                task, e.g. a model that does not use :class:`SegmentationTask`).
        """
        total = None
        for v in views:
            if 'seg_logits' not in v:
                raise KeyError(f'MultiTaskTTAModel: view of {v.metainfo.get("img_path")} has no seg_logits; the '
                               'segmentation task must keep its logits (SegmentationTask.keep_logits)')
            prob = v.seg_logits.data.float().softmax(dim=0)
            if v.flip:
                if v.flip_direction not in _FLIP_DIMS:
                    raise ValueError(f'MultiTaskTTAModel: unknown flip_direction {v.flip_direction!r} '
                                     f'(known: {list(_FLIP_DIMS)})')
                prob = prob.flip(_FLIP_DIMS[v.flip_direction])
            total = prob if total is None else total + prob
        return total / len(views)


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
