"""Semantic segmentation task: DeepLabV3+ head (cross-entropy)."""
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.structures import PixelData

from ...augmentation import warp_seg_maps
from ..base import BaseTask
from ..task_loss import TaskLoss
from .data import SegmentationData
from .quality import seg_counts, seg_metrics

#: the axes of a (K, H, W) map each mmcv ``RandomFlip`` direction reverses
FLIP_DIMS = {'horizontal': (-1, ), 'vertical': (-2, ), 'diagonal': (-2, -1)}


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

    data_type = SegmentationData
    draw_layer = 0  # maps first, under boxes and captions

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
        # mmdet's packing gives uint8 ``gt_sem_seg.sem_seg`` (1, H, W); training batches are padded to the batch
        # input by the data preprocessor (pad_seg), validation ones are not: pad here, as it does
        shape = data_samples[0].metainfo.get('batch_input_shape', data_samples[0].gt_sem_seg.shape)
        return self._ce_loss(outs, self._padded_maps(data_samples, 'gt_sem_seg', shape))

    def _padded_maps(self, data_samples, field: str, shape) -> torch.Tensor:
        """The (1, H, W) maps ``ds.<field>.sem_seg`` as one (B, H_p, W_p) int64 tensor of ``shape[:2]``, padded
        with ``ignore_index`` (cut where a map is larger)."""
        pad_h, pad_w = shape[:2]
        first = getattr(data_samples[0], field).sem_seg
        out = first.new_full((len(data_samples), pad_h, pad_w), self.ignore_index, dtype=torch.long)
        for i, ds in enumerate(data_samples):
            seg = getattr(ds, field).sem_seg[0]
            h, w = min(seg.shape[0], pad_h), min(seg.shape[1], pad_w)
            out[i, :h, :w] = seg[:h, :w]
        return out

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

    def predict(self, outs: torch.Tensor, data_samples, rescale: bool = True) -> None:
        """``pred_sem_seg.sem_seg`` (1, H, W) int64, the argmax of the logits at the original image size when
        ``rescale`` (else at ``img_shape``); with :attr:`keep_logits`, also ``seg_logits.data`` (K, H, W) there."""
        pad_shape = data_samples[0].metainfo.get('batch_input_shape', data_samples[0].img_shape)
        logits = F.interpolate(outs, size=tuple(pad_shape), mode='bilinear', align_corners=self.align_corners)
        for i, ds in enumerate(data_samples):
            h, w = ds.img_shape[:2]
            logit = logits[i:i + 1, :, :h, :w]
            if rescale:
                logit = F.interpolate(
                    logit, size=tuple(ds.ori_shape[:2]), mode='bilinear', align_corners=self.align_corners)
            ds.pred_sem_seg = PixelData(sem_seg=logit.argmax(dim=1))
            if self.keep_logits:
                ds.seg_logits = PixelData(data=logit[0])

    # ------------------------------------------------------------------------------------ after training
    def merge_views(self, views, base, tta_cfg, keep_logits: bool = False) -> None:
        """Mean over the views of ``softmax(seg_logits)``, each flipped back, then argmax: ``pred_sem_seg``
        (1, H, W); as mmseg's ``SegTTAModel``. With ``keep_logits`` the mean (K, H, W) stays as ``seg_logits``
        (at Cityscapes' size 19 x 1024 x 2048 floats, 160 MB per image), else it is dropped.

        Raises:
            KeyError: A view without ``seg_logits`` (predicted without :attr:`keep_logits`).
            ValueError: An unknown ``flip_direction``.
        """
        total = None
        for v in views:
            if 'seg_logits' not in v:
                raise KeyError(f'MultiTaskTTAModel: view of {v.metainfo.get("img_path")} has no seg_logits; the '
                               'segmentation task must keep its logits (SegmentationTask.keep_logits)')
            prob = v.seg_logits.data.float().softmax(dim=0)
            if v.flip:
                if v.flip_direction not in FLIP_DIMS:
                    raise ValueError(f'MultiTaskTTAModel: unknown flip_direction {v.flip_direction!r} '
                                     f'(known: {list(FLIP_DIMS)})')
                prob = prob.flip(FLIP_DIMS[v.flip_direction])
            total = prob if total is None else total + prob
        probs = total / len(views)
        base.pred_sem_seg = PixelData(sem_seg=probs.argmax(dim=0, keepdim=True))
        if keep_logits:
            base.seg_logits = PixelData(data=probs)
        elif 'seg_logits' in base:
            del base.seg_logits

    def export_outputs(self, outs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``logits`` (B, K, H/4, W/4): upsample (bilinear, ``align_corners`` of the head) and argmax outside."""
        return dict(logits=outs)

    def export_metadata(self, outs, dataset_meta) -> dict:
        meta = dict(num_classes=self.head.num_classes)
        if dataset_meta.get('seg_classes'):
            meta['classes'] = list(dataset_meta['seg_classes'])
        return meta

    def draw_labels(self, visualizer, image, labels: torch.Tensor, scale: int = 1) -> np.ndarray:
        """A (H, W) class map as an overlay; ``ignore_index`` pixels stay as they are."""
        seg = PixelData(sem_seg=labels.cpu().repeat_interleave(scale, 0).repeat_interleave(scale, 1)[None])
        seg.set_metainfo(dict(ignore_index=self.ignore_index))
        return visualizer._draw_sem_seg(image, seg, None, None)

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

    # ------------------------------------------------------------ pseudo-label quality (never a loss)
    def withheld_labels(self, data_samples):
        """Withheld maps (``withheld_sem_seg``): (B, H, W) int64 at the padded input size (``batch_input_shape``),
        ``ignore_index`` on the padding and unlabeled pixels; None when no sample has them."""
        has = [('withheld_sem_seg' in ds) for ds in data_samples]
        if not any(has):
            return None
        if not all(has):
            missing = [ds.metainfo.get('img_path') for ds, h in zip(data_samples, has) if not h]
            raise KeyError(f'SegmentationTask.withheld_labels: samples {missing} have no withheld_sem_seg')
        shape = data_samples[0].metainfo.get('batch_input_shape', data_samples[0].img_shape)
        return self._padded_maps(data_samples, 'withheld_sem_seg', shape)

    def quality_counts(self, outs, pseudo, data_samples, matrices, out_size) -> Dict[str, torch.Tensor]:
        """Warped pseudo-labels (``pseudo``, what the student is taught) vs the withheld maps warped the same way
        (nearest, out of view = ignore): the confusion over pixels where both are valid, and the strong views'
        in-view pixels (those coming from inside each weak view's ``img_shape``).

        Returns:
            dict: see :func:`~mtssl_mm.tasks.segmentation.quality.seg_counts` (K = the head's ``num_classes``).
        """
        k = self.head.num_classes
        if not data_samples:
            empty = torch.zeros((0, ) + tuple(out_size), dtype=torch.long, device=next(self.parameters()).device)
            return seg_counts(empty, empty, empty.bool(), k)
        withheld = self.withheld_labels(data_samples).to(pseudo.device)
        warped = warp_seg_maps(withheld, matrices, out_size, ignore_index=self.ignore_index)
        sizes = torch.tensor([ds.img_shape[:2] for ds in data_samples], device=pseudo.device)  # (B, 2)
        rows = torch.arange(withheld.shape[1], device=pseudo.device)
        cols = torch.arange(withheld.shape[2], device=pseudo.device)
        inside = (rows[None, :, None] < sizes[:, 0, None, None]) & (cols[None, None, :] < sizes[:, 1, None, None])
        in_view = warp_seg_maps(inside.to(torch.uint8), matrices, out_size, ignore_index=0).bool()
        return seg_counts(pseudo, warped, in_view, k)

    def quality_metrics(self, counts) -> Dict[str, float]:
        """``acc``, ``mIoU`` and ``in_view`` (fractions in [0, 1])."""
        return seg_metrics(counts)
