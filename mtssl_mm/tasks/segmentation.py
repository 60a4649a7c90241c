"""Semantic segmentation task: DeepLabV3+ head (cross-entropy)."""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.structures import PixelData

from ..augmentation import warp_seg_maps
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

    Semi-supervised learning: sigma_t is the argmax of the teacher's logits at the input resolution (no
    confidence threshold: ``pseudo_score_thr=0``, Table 10); padding pixels and, after the warp, pixels coming
    from outside the weak view are ignored (255); the unsupervised loss is the same cross-entropy.

    Args:
        head (dict): Decode head config (``mmseg.DepthwiseSeparableASPPHead``). Use
            ``loss_decode=dict(type='mmseg.CrossEntropyLoss', avg_non_ignore=True)`` so that the mean runs over
            labeled pixels only (Eq. 3).
        pseudo_score_thr (float): Pixels whose top softmax probability is below this are ignored. Defaults to 0.
        **kwargs: See :class:`BaseTask`.
    """

    def __init__(self, head: dict, pseudo_score_thr: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pseudo_score_thr = float(pseudo_score_thr)
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

    # ------------------------------------------------------------------------------------ semi-supervised
    def pseudo_label(self, outs: torch.Tensor, data_samples) -> torch.Tensor:
        """sigma_t: argmax of the teacher's logits, (B, H, W) int64 at the padded input size.

        Pixels outside each sample's ``img_shape`` (batch padding) are ``ignore_index``.
        """
        pad_h, pad_w = data_samples[0].metainfo.get('batch_input_shape', data_samples[0].img_shape)[:2]
        logits = F.interpolate(outs.float(), size=(pad_h, pad_w), mode='bilinear', align_corners=self.align_corners)
        if self.pseudo_score_thr > 0:
            prob, labels = logits.softmax(dim=1).max(dim=1)
            labels[prob < self.pseudo_score_thr] = self.ignore_index
        else:
            labels = logits.argmax(dim=1)
        sizes = torch.tensor([ds.img_shape[:2] for ds in data_samples], device=labels.device)  # (B, 2)
        rows = torch.arange(pad_h, device=labels.device)
        cols = torch.arange(pad_w, device=labels.device)
        inside = (rows[None, :, None] < sizes[:, 0, None, None]) & (cols[None, None, :] < sizes[:, 1, None, None])
        return labels.masked_fill_(~inside, self.ignore_index)

    def warp_pseudo_labels(self, labels: torch.Tensor, matrices: torch.Tensor, out_size) -> torch.Tensor:
        """Nearest sampling; pixels from outside the weak view become ``ignore_index``."""
        return warp_seg_maps(labels, matrices, out_size, ignore_index=self.ignore_index)

    def unsup_loss(self, outs: torch.Tensor, data_samples, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Cross-entropy against the warped pseudo-labels, averaged over their non-ignored pixels."""
        from mmseg.structures import SegDataSample
        seg_samples = [SegDataSample(gt_sem_seg=PixelData(data=lab[None].long())) for lab in labels]
        return self.head.loss_by_feat(outs, seg_samples)
