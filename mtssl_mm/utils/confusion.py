"""Intersection over union per class: the one IoU of the package (numpy only, so every layer may import it).

Its callers, each with its own inputs and its own handling of classes without pixels:

- the evaluator's class-wise report (:meth:`~mtssl_mm.tasks.SegmentationData.classwise_report`): per-class pixel
  areas of mmdet's ``SemSegMetric``, via :func:`class_iou`; a class with an empty union has no IoU (no key);
- the offline analysis (:mod:`mtssl_mm.evaluation.analysis`, ``tools/analysis/confusion_matrix.py``): the pixel
  confusion of saved predictions, via :func:`iou_from_confusion`; NaN for such a class, left out of the mean;
- the pseudo-label quality (:func:`mtssl_mm.tasks.segmentation.quality.seg_metrics`): the confusion of pseudo-labels
  against withheld labels, via :func:`iou_from_confusion`; no ``mIoU`` at all when nothing was counted.

Examples:
    >>> import numpy as np
    >>> iou, miou = iou_from_confusion(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]]))  # [gt, pred] pixel counts
    >>> iou.tolist()[:2], bool(np.isnan(iou[2])), miou
    ([0.5, 0.5], True, 0.5)
"""
from typing import Tuple

import numpy as np


def class_iou(intersect, union) -> np.ndarray:
    """Per-class IoU ``intersect / union``; NaN where ``union`` is 0 (a class in neither ground truth nor prediction).

    Args:
        intersect: ``(K,)`` pixels per class where prediction and ground truth agree (numpy, a list or a CPU
            tensor; any number type).
        union: ``(K,)`` pixels per class in the prediction or the ground truth (``pred + gt - intersect``).

    Returns:
        np.ndarray: ``(K,)`` float64 fractions in [0, 1], NaN where ``union == 0``.
    """
    inter = np.asarray(intersect, dtype=np.float64).reshape(-1)
    union = np.asarray(union, dtype=np.float64).reshape(-1)
    if inter.shape != union.shape:
        raise ValueError(f'class_iou: {inter.shape[0]} intersections for {union.shape[0]} unions')
    return np.divide(inter, union, out=np.full(inter.shape, np.nan), where=union > 0)


def iou_from_confusion(confusion) -> Tuple[np.ndarray, float]:
    """Per-class IoU of a confusion matrix and their mean over the classes that have one (mmseg's nan-mean).

    Args:
        confusion: ``(K, K)`` pixel counts ``[ground truth, prediction]`` (numpy or a CPU tensor).

    Returns:
        tuple: ``(iou, miou)``: ``(K,)`` float64 IoU (NaN where a class is in neither ground truth nor
        prediction) and their mean as a float (NaN when no class has an IoU, e.g. an empty matrix).
    """
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f'iou_from_confusion: expected a (K, K) confusion matrix, got shape {cm.shape}')
    diag = np.diag(cm)
    iou = class_iou(diag, cm.sum(0) + cm.sum(1) - diag)
    return iou, float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan')
