"""Segmentation pseudo-label quality against withheld maps: additive counts and the metrics computed from them.

Counts are sums (float64 tensors, exact for integers below 2**53) that can be added over iterations and over
ranks (one ``all_reduce`` each), so the metrics of an interval are those of its global batch whatever the
number of processes. Metrics are fractions in [0, 1]; a metric whose denominator is 0 is left out (there is
nothing to measure), never reported as 0 or NaN.
"""
from typing import Dict

import torch
from torch import Tensor

from ...utils.confusion import iou_from_confusion

__all__ = ['seg_counts', 'seg_metrics']


def seg_counts(pseudo: Tensor, withheld: Tensor, in_view: Tensor, num_classes: int) -> Dict[str, Tensor]:
    """Confusion of pseudo-label maps against withheld label maps, and the in-view share.

    Args:
        pseudo: ``(B, H, W)`` integer pseudo-labels (``ignore_index`` where there is no target).
        withheld: ``(B, H, W)`` integer withheld labels in the same pixels (``ignore_index`` where unlabeled).
        in_view: ``(B, H, W)`` bool, pixels that come from inside the source image.
        num_classes: K; values outside ``[0, K)`` (``ignore_index``) are not counted in the confusion.

    Returns:
        dict: ``confusion`` (K, K) pixels by (withheld class, pseudo class) where both are valid, ``num_in_view``
        () in-view pixels, ``num_pixels`` () all pixels, ``num_images`` () images; float64, on ``pseudo``'s device.
    """
    if pseudo.shape != withheld.shape or pseudo.shape != in_view.shape or pseudo.dim() != 3:
        raise ValueError(f'seg_counts: expected three (B, H, W) maps, got {tuple(pseudo.shape)}, '
                         f'{tuple(withheld.shape)} and {tuple(in_view.shape)}')
    p, w = pseudo.long(), withheld.to(pseudo.device).long()
    valid = (p >= 0) & (p < num_classes) & (w >= 0) & (w < num_classes)
    idx = w[valid] * num_classes + p[valid]
    confusion = torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)
    f64 = dict(dtype=torch.float64, device=pseudo.device)
    return dict(
        confusion=confusion.to(torch.float64),
        num_in_view=torch.tensor(float(in_view.sum()), **f64),
        num_pixels=torch.tensor(float(in_view.numel()), **f64),
        num_images=torch.tensor(float(pseudo.shape[0]), **f64))


def seg_metrics(counts: Dict[str, Tensor]) -> Dict[str, float]:
    """``acc`` (pixel accuracy), ``mIoU`` (mean over the classes present in the withheld or the pseudo labels,
    as mmseg's nan-mean: :func:`~mtssl_mm.utils.confusion.iou_from_confusion`) and ``in_view`` (in-view pixels /
    strong-view pixels), from :func:`seg_counts` sums; no ``acc`` and ``mIoU`` when no pixel was counted."""
    out = {}
    confusion = counts['confusion'].double().cpu()
    total = float(confusion.sum())
    if total > 0:
        out['acc'] = float(confusion.diag().sum()) / total
        out['mIoU'] = iou_from_confusion(confusion.numpy())[1]
    if float(counts['num_pixels']) > 0:
        out['in_view'] = float(counts['num_in_view']) / float(counts['num_pixels'])
    return out
