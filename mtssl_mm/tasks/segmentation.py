"""Semantic segmentation task: DeepLabV3+ head (cross-entropy)."""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.structures import PixelData

from ..augmentation import warp_seg_maps
from .base import BaseTask
from .task_loss import TaskLoss


@MODELS.register_module()
class SegmentationTask(BaseTask):
    """Semantic segmentation on the shared backbone.

    Data flow::

        backbone feats C2..C5 ─► head (mmseg DepthwiseSeparableASPPHead: ASPP on C5, decoder with C2)
            ─► logits (B, K, H/4, W/4)

    Targets are ``gt_sem_seg.sem_seg`` (1, H, W) uint8 class indices, ``ignore_index`` (255) for unlabeled
    pixels (mmdet's convention, shared with mmdet's data preprocessor, ``SemSegMetric`` and visualizer).
    The logits are upsampled to the label size (as mmseg's ``loss_by_feat``); the cross-entropy is summed over
    the pixels that are not ``ignore_index`` and normalised by their number in the global batch.
    Predictions go to ``pred_sem_seg.sem_seg`` (1, H, W) int64, at the original image size when ``rescale``.

    Semi-supervised learning: sigma_t is the argmax of the teacher's logits at the input resolution (no
    confidence threshold: ``pseudo_score_thr=0``, Table 10); padding pixels and, after the warp, pixels coming
    from outside the weak view are ignored (255); the unsupervised loss is the same cross-entropy.

    Args:
        head (dict): Decode head config (``mmseg.DepthwiseSeparableASPPHead``) whose ``loss_decode`` is one or
            more ``mmseg.CrossEntropyLoss`` (softmax); the mean always runs over the non-ignored pixels (Eq. 3),
            whatever their ``avg_non_ignore``.
        pseudo_score_thr (float): Pixels whose top softmax probability is below this are ignored. Defaults to 0.
        **kwargs: See :class:`BaseTask`.
    """

    def __init__(self, head: dict, pseudo_score_thr: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pseudo_score_thr = float(pseudo_score_thr)
        self.head = MODELS.build(head)
        self.ignore_index = self.head.ignore_index
        self.align_corners = self.head.align_corners
        from mmseg.models.losses import CrossEntropyLoss
        for loss in self._loss_modules():
            if not isinstance(loss, CrossEntropyLoss) or loss.use_sigmoid or loss.use_mask:
                raise ValueError(f'SegmentationTask: head.loss_decode must be softmax mmseg.CrossEntropyLoss '
                                 f'(a per-pixel sum that can be normalised over the global batch), got {loss}')
            if loss.class_weight is not None:
                raise ValueError('SegmentationTask: head.loss_decode.class_weight is not supported (mmseg divides '
                                 'by the summed class weights, not by the labeled pixels of the global batch)')
        if getattr(self.head, 'sampler', None) is not None:
            raise ValueError('SegmentationTask: head.sampler (pixel sampling, e.g. OHEM) is not supported: its '
                             'per-pixel weights would not reach the loss')

    def _loss_modules(self):
        losses = self.head.loss_decode
        return list(losses) if isinstance(losses, torch.nn.ModuleList) else [losses]

    @property
    def loss_keys(self):
        return tuple(dict.fromkeys(loss.loss_name for loss in self._loss_modules()))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.head(list(feats))

    def loss(self, outs: torch.Tensor, data_samples) -> TaskLoss:
        """Cross-entropy sums against ``gt_sem_seg``; normaliser: the labeled (non-ignored) pixels."""
        # mmdet's packing gives uint8 ``gt_sem_seg.sem_seg`` (1, H, W)
        labels = torch.stack([ds.gt_sem_seg.sem_seg[0] for ds in data_samples]).long()
        return self._ce_loss(outs, labels)

    def _ce_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> TaskLoss:
        """Per-pixel cross-entropy summed over the non-ignored pixels of ``labels``.

        Args:
            logits: ``(B, K, h, w)`` head outputs, upsampled (bilinear) to the labels' size as mmseg does.
            labels: ``(B, H, W)`` int64 class indices, ``ignore_index`` where there is no target.
        """
        from mmseg.models.utils import resize
        logits = resize(logits, size=labels.shape[-2:], mode='bilinear', align_corners=self.align_corners)
        sums = {}
        for loss in self._loss_modules():
            value = loss(logits, labels, ignore_index=self.ignore_index, reduction_override='sum')
            sums[loss.loss_name] = sums[loss.loss_name] + value if loss.loss_name in sums else value
        return TaskLoss(sums, (labels != self.ignore_index).sum().float())

    #: also write each sample's logits as ``seg_logits`` (PixelData, ``data`` (K, H, W) float) in :meth:`predict`;
    #: set by :class:`~mtssl_mm.models.MultiTaskTTAModel`, which averages them over the views and drops them
    #: (at Cityscapes' size they are 19 x 1024 x 2048 floats, 160 MB per image)
    keep_logits: bool = False

    def predict(self, outs: torch.Tensor, data_samples, rescale: bool = True) -> None:
        """``pred_sem_seg.sem_seg`` (1, H, W) int64, the argmax of the logits at the original image size when
        ``rescale`` (else at ``img_shape``); with :attr:`keep_logits`, also ``seg_logits.data`` (K, H, W) there."""
        pad_shape = data_samples[0].metainfo.get('batch_input_shape', data_samples[0].img_shape)
        logits = F.interpolate(outs, size=tuple(pad_shape), mode='bilinear', align_corners=self.align_corners)
        for i, ds in enumerate(data_samples):
            h, w = ds.img_shape[:2]
            logit = logits[i:i + 1, :, :h, :w]
            if rescale:
                logit = F.interpolate(logit, size=tuple(ds.ori_shape[:2]), mode='bilinear',
                                      align_corners=self.align_corners)
            ds.pred_sem_seg = PixelData(sem_seg=logit.argmax(dim=1))
            if self.keep_logits:
                ds.seg_logits = PixelData(data=logit[0])

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

    def unsup_loss(self, outs: torch.Tensor, data_samples, labels: torch.Tensor) -> TaskLoss:
        """Cross-entropy sums against the warped pseudo-labels; normaliser: their non-ignored pixels.

        With sigma_t = argmax (Table 10) these are the in-view pixels of the strong view, the denominator of the
        authors' code (``num_elements``); with ``pseudo_score_thr > 0`` the pixels below it are left out of the
        denominator too (the authors keep them in it).
        """
        return self._ce_loss(outs, labels.long())
