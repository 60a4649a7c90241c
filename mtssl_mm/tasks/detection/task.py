"""Object detection task: FPN + RetinaNet head (focal loss, GIoU loss)."""
import copy
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from mmdet.models.utils import images_to_levels, multi_apply, unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_flip, cat_boxes
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

from ...augmentation import warp_boxes_batch
from ..base import BaseTask
from ..task_loss import TaskLoss
from .data import DetectionData
from .quality import box_counts, box_metrics


@MODELS.register_module()
class DetectionTask(BaseTask):
    """Dense object detection on the shared backbone.

    Data flow::

        backbone feats C2..C5 ─► neck (FPN, P3..P7) ─► head (RetinaHead)
            ─► (cls_scores, bbox_preds): per level (B, A*K, H_l, W_l) and (B, A*4, H_l, W_l)

    Supervised targets come from each sample's ``gt_instances`` (boxes in pixels of the network input).
    ``ignored_instances`` (crowd regions) take part in the assignment only if the assigner sets
    ``ignore_iof_thr > 0``; the configs keep mmdet's RetinaNet ``-1`` (they serve COCO evaluation as ``iscrowd``),
    and an assigner that would hand a box every anchor with IoU 0 (``ignore_iof_thr > 0`` with ``min_pos_iou <= 0``
    and low-quality matching) is refused. Predictions go to ``pred_instances`` (``bboxes`` (N, 4) in pixels of the
    original image when ``rescale``, ``scores`` (N,), ``labels`` (N,)).

    Loss normalisers (``loss_normaliser``). ``'per_image'`` (default), Eq. 3 and Eq. 4 as written: each image's
    focal and GIoU sums are divided by its own number of positive anchors (at least 1) and these per-image losses
    are averaged over the images of B^l_det (supervised) or B^u_det (unsupervised) in the global batch, as
    torchvision's RetinaNet does; an image with 40 objects weighs as much as one with a single object. ``'pooled'``
    (mmdet's convention): the sums of the batch divided by its positive anchors (supervised: at least 1 per image,
    ``SamplingResult.avg_factor``; unsupervised: ``max(global count, 1)``).

    Semi-supervised learning: sigma_t keeps the teacher's post-NMS boxes with score >= ``pseudo_score_thr``
    (0.5, section 3); the boxes are warped corner by corner into the strong view; the unsupervised loss counts
    only the anchors assigned to a pseudo box (predictions matched to background are discarded), so an image
    without pseudo boxes contributes 0 (and, ``'per_image'``, still counts in |B^u_det|).

    Args:
        neck (dict): Neck config (mmdet ``FPN``).
        head (dict): Dense head config (mmdet ``RetinaHead``).
        train_cfg (dict, optional): Assigner/sampler config of the head.
        test_cfg (dict, optional): Score threshold / NMS config of the head.
        loss_normaliser (str): ``'per_image'`` (Eq. 3/4) or ``'pooled'`` (mmdet's), see above.
        pseudo_score_thr (float): Confidence threshold of sigma_t. Defaults to 0.5.
        pseudo_min_box_size (float): Warped pseudo boxes narrower or shorter than this (pixels) are dropped.
        quality_score_thrs (Sequence[float]): Score thresholds at which :meth:`quality_counts` measures the pseudo
            boxes against withheld boxes (``pseudo_score_thr`` is always added). Defaults to (0.3, 0.5, 0.7).
        **kwargs: See :class:`BaseTask`.
    """

    loss_keys = ('loss_cls', 'loss_bbox')
    data_type = DetectionData
    LOSS_NORMALISERS = ('per_image', 'pooled')
    #: merging test-time views (:meth:`merge_views`) unless ``tta_cfg`` sets them: mmdet's ``DetTTAModel`` defaults
    TTA_DEFAULTS = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100)
    draw_layer = 1  # boxes over maps

    def __init__(self,
                 neck: dict,
                 head: dict,
                 train_cfg=None,
                 test_cfg=None,
                 loss_normaliser: str = 'per_image',
                 pseudo_score_thr: float = 0.5,
                 pseudo_min_box_size: float = 2.0,
                 quality_score_thrs: Sequence[float] = (0.3, 0.5, 0.7),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if loss_normaliser not in self.LOSS_NORMALISERS:
            raise ValueError(f'DetectionTask: loss_normaliser must be one of {self.LOSS_NORMALISERS}, '
                             f'got {loss_normaliser!r}')
        self.loss_normaliser = loss_normaliser
        check_assigner((train_cfg or {}).get('assigner'))
        self.pseudo_score_thr = float(pseudo_score_thr)
        self.pseudo_min_box_size = float(pseudo_min_box_size)
        self.quality_score_thrs = tuple(sorted({float(t) for t in quality_score_thrs} | {self.pseudo_score_thr}))
        self.neck = MODELS.build(neck)
        head = dict(head)
        head.update(
            train_cfg=ConfigDict(train_cfg) if train_cfg else None, test_cfg=ConfigDict(test_cfg) if test_cfg else None)
        self.head = MODELS.build(head)

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[list, list]:
        return self.head(self.neck(feats))

    def loss(self, outs, data_samples) -> TaskLoss:
        """Focal + GIoU loss sums over the anchors of ``data_samples``; normaliser: the images (``'per_image'``,
        each image's sums already divided by its positives, at least 1) or sum_i max(positives_i, 1)
        (``'pooled'``)."""
        gt_instances, gt_ignore, img_metas = unpack_gt_instances(data_samples)
        return self._anchor_loss(outs, gt_instances, img_metas, gt_ignore, positives_only=False)

    def _anchor_loss(self, outs, gt_instances, img_metas, gt_ignore, positives_only: bool) -> TaskLoss:
        """mmdet's ``AnchorHead.loss_by_feat`` as sums (``avg_factor=1``), with the normaliser beside them.

        ``'per_image'``: every anchor's weights are divided by its image's number of positive anchors (at least
        1), so the sums are sums of per-image means, and the normaliser is the number of images.

        Args:
            outs: ``(cls_scores, bbox_preds)``, per level ``(B, A*K, H_l, W_l)`` and ``(B, A*4, H_l, W_l)``.
            gt_instances, img_metas, gt_ignore: per image, as ``unpack_gt_instances`` gives them.
            positives_only: give background anchors zero classification weight (the unsupervised loss; its
                ``'pooled'`` normaliser counts only positive anchors); else mmdet's supervised convention.
        """
        cls_scores, bbox_preds = outs
        head = self.head
        device = cls_scores[0].device
        anchors, valid_flags = head.get_anchors([s.shape[-2:] for s in cls_scores], img_metas, device=device)
        labels_l, label_weights_l, bbox_targets_l, bbox_weights_l, avg_factor = head.get_targets(
            anchors, valid_flags, gt_instances, img_metas, batch_gt_instances_ignore=gt_ignore)
        positive = [lab < head.num_classes for lab in labels_l]  # per level (B, n_l)
        if positives_only:
            label_weights_l = [w * p for w, p in zip(label_weights_l, positive)]
        if self.loss_normaliser == 'per_image':
            per_image = torch.stack([p.sum(dim=1) for p in positive]).sum(dim=0).float()  # (B,) positives
            scale = 1.0 / per_image.clamp(min=1.0)
            label_weights_l = [w * scale[:, None] for w in label_weights_l]
            bbox_weights_l = [w * scale[:, None, None] for w in bbox_weights_l]
            normaliser = torch.tensor(float(len(img_metas)), dtype=torch.float32, device=device)
        elif positives_only:
            normaliser = sum(p.sum() for p in positive).float()
        else:
            normaliser = torch.tensor(float(avg_factor), dtype=torch.float32, device=device)
        num_level_anchors = [a.size(0) for a in anchors[0]]
        level_anchors = images_to_levels([cat_boxes(a) for a in anchors], num_level_anchors)
        # avg_factor=1: mmdet's losses return their sums (divided by 1 + float32 eps)
        losses_cls, losses_bbox = multi_apply(
            head.loss_by_feat_single,
            cls_scores,
            bbox_preds,
            level_anchors,
            labels_l,
            label_weights_l,
            bbox_targets_l,
            bbox_weights_l,
            avg_factor=1.0)
        return TaskLoss(dict(loss_cls=losses_cls, loss_bbox=losses_bbox), normaliser)

    def predict(self, outs, data_samples, rescale: bool = True) -> None:
        img_metas = [ds.metainfo for ds in data_samples]
        results = self.head.predict_by_feat(*outs, batch_img_metas=img_metas, rescale=rescale)
        for ds, res in zip(data_samples, results):
            ds.pred_instances = res

    # ------------------------------------------------------------------------------------ after training
    def merge_views(self, views, base, tta_cfg, keep_logits: bool = False) -> None:
        """Boxes of all views in the original orientation, then class-wise NMS (``tta_cfg['nms']``, an mmcv
        ``batched_nms`` config) and the ``tta_cfg['max_per_img']`` best kept, as mmdet's ``DetTTAModel``.

        Each view's ``pred_instances.bboxes`` (N, 4) are pixels of the original image (the model rescales them),
        so a flipped view's boxes are flipped back within ``ori_shape``.
        """
        from mmcv.ops import batched_nms
        cfg = dict(self.TTA_DEFAULTS, **(tta_cfg or {}))
        boxes, scores, labels = [], [], []
        for v in views:
            if 'pred_instances' not in v:
                raise KeyError(f'{type(self).__name__}: a view of {v.metainfo.get("img_path")} has no pred_instances')
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
        else:
            dets, keep = batched_nms(boxes, scores, labels, copy.deepcopy(cfg['nms']))
            n = int(cfg['max_per_img'])
            out.bboxes, out.scores, out.labels = dets[:n, :4], dets[:n, 4], labels[keep][:n]
        base.pred_instances = out

    def export_outputs(self, outs) -> Dict[str, torch.Tensor]:
        """``cls_scores`` (B, N, K) logits and ``bbox_deltas`` (B, N, 4) (DeltaXYWH w.r.t. the anchors), the N
        rows flattened as mmdet's ``predict_by_feat`` and mmdeploy do: level, row (y), column (x), anchor."""
        cls_scores, bbox_preds = outs
        k = self.head.cls_out_channels
        return dict(
            cls_scores=torch.cat([flatten_level(s, k) for s in cls_scores], dim=1),
            bbox_deltas=torch.cat([flatten_level(b, 4) for b in bbox_preds], dim=1))

    def anchors(self, outs) -> List[torch.Tensor]:
        """Per head level (N_l, 4) x1, y1, x2, y2 in input pixels: row ``n`` of :meth:`export_outputs`' level."""
        return self.head.prior_generator.grid_priors([s.shape[-2:] for s in outs[0]], device=outs[0][0].device)

    def export_metadata(self, outs, dataset_meta) -> dict:
        """Classes, score function, box coder, the head's ``test_cfg`` and the rows of each level (``nms_pre``
        is applied per level)."""
        head, coder = self.head, self.head.bbox_coder
        meta = dict(
            num_classes=head.num_classes,
            score='sigmoid' if head.use_sigmoid_cls else 'softmax',
            bbox_coder=dict(
                type=type(coder).__name__,
                target_means=list(map(float, coder.means)),
                target_stds=list(map(float, coder.stds)),
                clip_border=getattr(coder, 'clip_border', None)),
            test_cfg=_plain(head.test_cfg),
            level_rows=[int(len(a)) for a in self.anchors(outs)])
        if dataset_meta.get('classes'):
            meta['classes'] = list(dataset_meta['classes'])
        return meta

    def export_arrays(self, outs) -> Dict[str, np.ndarray]:
        """``anchors`` (N, 4) float32: the anchor of every output row, x1 y1 x2 y2 in input pixels."""
        return dict(anchors=torch.cat(self.anchors(outs)).cpu().numpy().astype(np.float32))

    def draw_labels(self, visualizer, image, labels, scale: int = 1):
        """Boxes (``InstanceData`` with ``bboxes`` in pixels before ``scale``) with class and score."""
        meta = visualizer.dataset_meta or {}
        labels = labels.cpu().clone()
        labels.bboxes = labels.bboxes * scale
        return visualizer._draw_instances(image, labels, meta.get('classes'), meta.get('palette'))

    # ------------------------------------------------------------------------------------ semi-supervised
    def pseudo_label(self, outs, data_samples) -> List[InstanceData]:
        """sigma_t: the teacher's boxes (after NMS) with score >= ``pseudo_score_thr``.

        Returns:
            list[InstanceData]: per sample ``bboxes`` (N, 4) in input pixels, ``labels`` (N,), ``scores`` (N,).
        """
        img_metas = [ds.metainfo for ds in data_samples]
        # float32 whatever the autocast dtype of the teacher pass: box decoding and NMS of mixed-precision
        # scores fail (mmcv's NMS wants one dtype) or round boxes to a few pixels (bf16 at 1000 px: 4 px)
        cls_scores, bbox_preds = ([t.float() for t in level] for level in outs)
        results = self.head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=img_metas, rescale=False)
        return [res[res.scores >= self.pseudo_score_thr] for res in results]

    def warp_pseudo_labels(self, labels, matrices, out_size) -> List[InstanceData]:
        """Boxes: four corners mapped, enclosing box, clipped to ``out_size``, small boxes dropped."""
        boxes, keeps = warp_boxes_batch([res.bboxes for res in labels],
                                        matrices,
                                        out_size,
                                        min_size=self.pseudo_min_box_size)
        return [
            InstanceData(bboxes=b, labels=res.labels[k], scores=res.scores[k])
            for b, k, res in zip(boxes, keeps, labels)
        ]

    def unsup_loss(self, outs, data_samples, labels) -> TaskLoss:
        """Focal + GIoU loss sums over the anchors assigned to a pseudo box only; normaliser: the images of B^u_det
        (``'per_image'``, Eq. 4: each image's sums over its own pseudo-box anchors) or those anchors (``'pooled'``).

        Anchors the assigner leaves as background get zero classification weight: with a high threshold the
        pseudo-labels miss many objects, and treating their anchors as negatives would teach the student to
        miss them too. An image without any pseudo box therefore contributes an exact zero to the sums; it counts
        in the normaliser with ``'per_image'`` (|B^u_det| of Eq. 4), not with ``'pooled'``.
        """
        samples = []
        for ds, res in zip(data_samples, labels):
            sample = DetDataSample(metainfo=ds.metainfo)
            sample.gt_instances = InstanceData(bboxes=res.bboxes, labels=res.labels)
            samples.append(sample)
        gt_instances, gt_ignore, img_metas = unpack_gt_instances(samples)
        return self._anchor_loss(outs, gt_instances, img_metas, gt_ignore, positives_only=True)

    @staticmethod
    def pseudo_stats(labels) -> Dict[str, Tuple[float, float]]:
        """Logged beside the losses: pseudo boxes per image of B^u_det (boxes, images; None: no image)."""
        labels = labels or []
        return dict(pseudo_boxes_per_img=(float(sum(len(res) for res in labels)), float(len(labels))))

    # ------------------------------------------------------------ pseudo-label quality (never a loss)
    def withheld_labels(self, data_samples):
        """Withheld boxes (``withheld_instances``): per sample InstanceData ``bboxes`` (G, 4) in input pixels,
        ``labels`` (G,); None when no sample has them."""
        has = [('withheld_instances' in ds) for ds in data_samples]
        if not any(has):
            return None
        if not all(has):
            missing = [ds.metainfo.get('img_path') for ds, h in zip(data_samples, has) if not h]
            raise KeyError(f'DetectionTask.withheld_labels: samples {missing} have no withheld_instances')
        return [
            InstanceData(bboxes=ds.withheld_instances.bboxes, labels=ds.withheld_instances.labels)
            for ds in data_samples
        ]

    def quality_counts(self, outs, pseudo, data_samples, matrices, out_size) -> Dict[str, torch.Tensor]:
        """Pseudo boxes vs withheld boxes in the strong views, at each of :attr:`quality_score_thrs`.

        The teacher's boxes are decoded again (``predict_by_feat``, score threshold lowered to the lowest quality
        threshold when the head's ``test_cfg`` is higher), so that thresholds below ``pseudo_score_thr`` can be
        measured; at ``pseudo_score_thr`` they are sigma_det's boxes (unless NMS keeps more than ``max_per_img``).
        Pseudo and withheld boxes are both moved by :meth:`warp_pseudo_labels` (clipped, small boxes dropped).

        Returns:
            dict: see :func:`~mtssl_mm.tasks.detection.quality.box_counts` (thresholds: :attr:`quality_score_thrs`).
        """
        device = next(self.parameters()).device
        if not data_samples:
            return box_counts([], [], self.quality_score_thrs, device=device)
        cfg = ConfigDict(copy.deepcopy(self.head.test_cfg or {}))
        cfg.score_thr = min(float(cfg.get('score_thr', 0.0)), self.quality_score_thrs[0])
        cls_scores, bbox_preds = ([t.float() for t in level] for level in outs)
        img_metas = [ds.metainfo for ds in data_samples]
        results = self.head.predict_by_feat(cls_scores, bbox_preds, batch_img_metas=img_metas, cfg=cfg, rescale=False)
        results = [res[res.scores >= self.quality_score_thrs[0]] for res in results]
        withheld = self.withheld_labels(data_samples)
        for res in withheld:
            res.scores = res.bboxes.new_ones(len(res))
        warped_pred = self.warp_pseudo_labels(results, matrices, out_size)
        warped_gt = self.warp_pseudo_labels([w.to(matrices.device) for w in withheld], matrices, out_size)
        return box_counts(warped_pred, warped_gt, self.quality_score_thrs, device=device)

    def quality_metrics(self, counts) -> Dict[str, float]:
        """``precision@thr``, ``recall@thr`` (IoU 0.5, same class) and ``boxes_per_img@thr`` per threshold."""
        return box_metrics(counts, self.quality_score_thrs)


def flatten_level(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, A*C, H, W) -> (B, H*W*A, C), mmdet's ``predict_by_feat_single`` order (row, column, anchor)."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, channels)


def _plain(obj):
    """ConfigDict/tuples -> JSON-friendly dicts and lists."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def check_assigner(assigner) -> None:
    """Refuse a ``MaxIoUAssigner`` config under which an ignore region hands a box the image's anchors.

    With ``ignore_iof_thr > 0`` the anchors mostly inside an ignore region get IoU -1 with every box; a box whose
    overlapping anchors are all such anchors keeps a best IoU of 0, and low-quality matching with
    ``min_pos_iou <= 0`` then makes *every* anchor with IoU 0 its positive (all of them with
    ``gt_max_assign_all``): on a 512x256 image with a 32x32 box inside a 300x150 crowd region, 350 of 512
    anchors. mmdet's RetinaNet sets ``ignore_iof_thr=-1``.

    Raises:
        ValueError: naming ``train_cfg.assigner`` and the keys to change.
    """
    if not assigner or assigner.get('type') != 'MaxIoUAssigner':
        return
    if (assigner.get('ignore_iof_thr', -1) > 0 and assigner.get('min_pos_iou', 0.0) <= 0
            and assigner.get('match_low_quality', True)):
        raise ValueError(f'DetectionTask: train_cfg.assigner {dict(assigner)} would give a box whose overlapping '
                         'anchors lie in an ignore region every anchor with IoU 0 as a positive (ignore_iof_thr > 0 '
                         'with min_pos_iou <= 0 and match_low_quality); set ignore_iof_thr=-1 (mmdet\'s RetinaNet: '
                         'ignore regions serve COCO evaluation only) or min_pos_iou > 0')
