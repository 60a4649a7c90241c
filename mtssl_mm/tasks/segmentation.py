"""Semantic segmentation task: DeepLabV3+ head (cross-entropy)."""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.structures import PixelData

from .base import BaseTask


@MODELS.register_module()
class SegmentationTask(BaseTask):
    """Semantic segmentation on the shared backbone.

    Data flow::

        backbone feats C2..C5 ─► head (mmseg DepthwiseSeparableASPPHead: ASPP on C5, decoder with C2)
            ─► logits (B, K, H/4, W/4)

    Targets are ``gt_sem_seg.sem_seg`` (1, H, W) uint8 class indices, ``ignore_index`` (255) for unlabeled
    pixels (mmdet's convention, shared with mmdet's data preprocessor, ``SemSegMetric`` and visualizer).
    Predictions go to ``pred_sem_seg.sem_seg`` (1, H, W) int64, at the original image size when ``rescale``.

    Args:
        head (dict): Decode head config (``mmseg.DepthwiseSeparableASPPHead``). Use
            ``loss_decode=dict(type='mmseg.CrossEntropyLoss', avg_non_ignore=True)`` so that the mean runs over
            labeled pixels only (Eq. 3).
        **kwargs: See :class:`BaseTask`.
    """

    def __init__(self, head: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.head = MODELS.build(head)
        self.ignore_index = self.head.ignore_index
        self.align_corners = self.head.align_corners

    @property
    def loss_keys(self):
        losses = self.head.loss_decode
        losses = losses if isinstance(losses, torch.nn.ModuleList) else [losses]
        return tuple(dict.fromkeys(loss.loss_name for loss in losses))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.head(list(feats))

    def loss(self, outs: torch.Tensor, data_samples) -> Dict[str, torch.Tensor]:
        from mmseg.structures import SegDataSample

        # mmseg's heads read int64 ``gt_sem_seg.data``; mmdet's packing gives uint8 ``gt_sem_seg.sem_seg``.
        seg_samples = [SegDataSample(gt_sem_seg=PixelData(data=ds.gt_sem_seg.sem_seg.long())) for ds in data_samples]
        return self.head.loss_by_feat(outs, seg_samples)

    def predict(self, outs: torch.Tensor, data_samples, rescale: bool = True) -> None:
        pad_shape = data_samples[0].metainfo.get('batch_input_shape', data_samples[0].img_shape)
        logits = F.interpolate(outs, size=tuple(pad_shape), mode='bilinear', align_corners=self.align_corners)
        for i, ds in enumerate(data_samples):
            h, w = ds.img_shape[:2]
            logit = logits[i:i + 1, :, :h, :w]
            if rescale:
                logit = F.interpolate(logit, size=tuple(ds.ori_shape[:2]), mode='bilinear',
                                      align_corners=self.align_corners)
            ds.pred_sem_seg = PixelData(sem_seg=logit.argmax(dim=1))
