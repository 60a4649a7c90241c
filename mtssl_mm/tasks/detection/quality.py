"""Detection pseudo-label quality against withheld boxes: additive counts and the metrics computed from them.

Counts are sums (float64 tensors, exact for integers below 2**53) that can be added over iterations and over
ranks (one ``all_reduce`` each), so the metrics of an interval are those of its global batch whatever the
number of processes. Metrics are fractions in [0, 1]; a metric whose denominator is 0 is left out (there is
nothing to measure), never reported as 0 or NaN.
"""
from typing import Dict, Sequence

import torch
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

__all__ = ['box_counts', 'box_metrics', 'thr_name']


def thr_name(thr: float) -> str:
    """The suffix of a per-threshold metric: ``'@0.5'``."""
    return f'@{thr:g}'


def _match_image(boxes: Tensor, scores: Tensor, labels: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
                 iou_thr: float) -> Tensor:
    """Greedy matching by descending score: ``(P,)`` bool, True where a box matches a not-yet-matched ground-truth
    box of its class with IoU >= ``iou_thr`` (the one of highest IoU among those)."""
    tp = torch.zeros(len(boxes), dtype=torch.bool)
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return tp
    ious = bbox_overlaps(boxes.float().cpu(), gt_boxes.float().cpu())  # (P, G)
    ious[labels.cpu()[:, None] != gt_labels.cpu()[None, :]] = -1.0
    matched = torch.zeros(len(gt_boxes), dtype=torch.bool)
    for i in torch.argsort(scores.cpu(), descending=True, stable=True).tolist():
        row = ious[i].masked_fill(matched, -1.0)
        j = int(row.argmax())
        if row[j] >= iou_thr:
            matched[j] = True
            tp[i] = True
    return tp


def box_counts(pseudo: Sequence,
               withheld: Sequence,
               score_thrs: Sequence[float],
               iou_thr: float = 0.5,
               device=None) -> Dict[str, Tensor]:
    """Counts of pseudo boxes against withheld boxes, per score threshold.

    Matching is greedy by descending score, so the matches of the boxes above a threshold do not depend on the
    boxes below it: one pass over all boxes serves every threshold.

    Args:
        pseudo: per image, InstanceData with ``bboxes`` (P, 4), ``scores`` (P,), ``labels`` (P,) (pixels).
        withheld: per image, InstanceData with ``bboxes`` (G, 4), ``labels`` (G,): the ground truth (no crowd or
            ignore boxes), in the same pixels.
        score_thrs: T thresholds; pseudo boxes with ``score >= thr`` count at ``thr``.
        iou_thr: IoU for a true positive.
        device: of the returned tensors (defaults to the CPU).

    Returns:
        dict: ``num_pseudo`` (T,) boxes above each threshold, ``num_tp`` (T,) true positives among them,
        ``num_withheld`` () withheld boxes, ``num_images`` () images; float64.
    """
    if len(pseudo) != len(withheld):
        raise ValueError(f'box_counts: {len(pseudo)} images of pseudo boxes for {len(withheld)} of withheld boxes')
    thrs = torch.tensor([float(t) for t in score_thrs], dtype=torch.float64)
    num_pseudo = torch.zeros(len(thrs), dtype=torch.float64)
    num_tp = torch.zeros(len(thrs), dtype=torch.float64)
    num_withheld = 0
    for pred, gt in zip(pseudo, withheld):
        scores = pred.scores.detach().cpu().double()
        tp = _match_image(pred.bboxes, pred.scores, pred.labels, gt.bboxes, gt.labels, iou_thr)
        above = scores[None, :] >= thrs[:, None]  # (T, P)
        num_pseudo += above.sum(dim=1).double()
        num_tp += (above & tp[None, :]).sum(dim=1).double()
        num_withheld += len(gt.bboxes)
    out = dict(
        num_pseudo=num_pseudo,
        num_tp=num_tp,
        num_withheld=torch.tensor(float(num_withheld), dtype=torch.float64),
        num_images=torch.tensor(float(len(pseudo)), dtype=torch.float64))
    return {k: v.to(device) for k, v in out.items()} if device is not None else out


def box_metrics(counts: Dict[str, Tensor], score_thrs: Sequence[float]) -> Dict[str, float]:
    """``precision@thr`` (true positives / pseudo boxes), ``recall@thr`` (true positives / withheld boxes) and
    ``boxes_per_img@thr`` (pseudo boxes / images) for each threshold, from :func:`box_counts` sums."""
    out = {}
    num_withheld, num_images = float(counts['num_withheld']), float(counts['num_images'])
    for k, thr in enumerate(score_thrs):
        pseudo, tp = float(counts['num_pseudo'][k]), float(counts['num_tp'][k])
        if pseudo > 0:
            out[f'precision{thr_name(thr)}'] = tp / pseudo
        if num_withheld > 0:
            out[f'recall{thr_name(thr)}'] = tp / num_withheld
        if num_images > 0:
            out[f'boxes_per_img{thr_name(thr)}'] = pseudo / num_images
    return out
