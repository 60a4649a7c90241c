"""Object detection task: FPN + RetinaNet head (focal loss, GIoU loss)."""
from typing import Dict, Sequence, Tuple

import torch
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmengine.config import ConfigDict

from .base import BaseTask


@MODELS.register_module()
class DetectionTask(BaseTask):
    """Dense object detection on the shared backbone.

    Data flow::

        backbone feats C2..C5 ─► neck (FPN, P3..P7) ─► head (RetinaHead)
            ─► (cls_scores, bbox_preds): per level (B, A*K, H_l, W_l) and (B, A*4, H_l, W_l)

    Supervised targets come from each sample's ``gt_instances`` (boxes in pixels of the network input);
    ``ignored_instances`` (crowd regions) make the anchors they cover ignored when the assigner sets
    ``ignore_iof_thr``. Predictions go to ``pred_instances`` (``bboxes`` (N, 4) in pixels of the original image
    when ``rescale``, ``scores`` (N,), ``labels`` (N,)).

    Args:
        neck (dict): Neck config (mmdet ``FPN``).
        head (dict): Dense head config (mmdet ``RetinaHead``).
        train_cfg (dict, optional): Assigner/sampler config of the head.
        test_cfg (dict, optional): Score threshold / NMS config of the head.
        **kwargs: See :class:`BaseTask`.
    """

    loss_keys = ('loss_cls', 'loss_bbox')

    def __init__(self, neck: dict, head: dict, train_cfg=None, test_cfg=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.neck = MODELS.build(neck)
        head = dict(head)
        head.update(train_cfg=ConfigDict(train_cfg) if train_cfg else None,
                    test_cfg=ConfigDict(test_cfg) if test_cfg else None)
        self.head = MODELS.build(head)

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[list, list]:
        return self.head(self.neck(feats))

    def loss(self, outs, data_samples) -> Dict[str, torch.Tensor]:
        gt_instances, gt_ignore, img_metas = unpack_gt_instances(data_samples)
        return self.head.loss_by_feat(*outs, gt_instances, img_metas, gt_ignore)

    def predict(self, outs, data_samples, rescale: bool = True) -> None:
        img_metas = [ds.metainfo for ds in data_samples]
        results = self.head.predict_by_feat(*outs, batch_img_metas=img_metas, rescale=rescale)
        for ds, res in zip(data_samples, results):
            ds.pred_instances = res
