"""Class-wise results of each task, as the paper's Tables 5, 6, 8 and 9: one value per class, then mean ± std.

Both tasks report fractions in [0, 1] (the paper's tables), also for segmentation, whose ``seg/mIoU`` is in %.
The standard deviation is the *population* one (``ddof=0``) across the classes that have a value: it
reproduces the paper's tables (Table 5 supervised: 0.765 ± 0.143; Table 6: 0.367 ± 0.114).

Classes without ground truth:

- detection: COCO gives no AP for a class without a (non-crowd) ground-truth box (its precision is -1); the
  class has no ``det/AP/<class>`` key and stays out of the mean and std, as it stays out of COCO's mAP;
- segmentation: a class with neither ground-truth nor predicted pixels has no IoU (0/0) and is left out the same
  way; a class without ground-truth pixels that the model predicts somewhere has IoU 0 and *counts* -- exactly as
  in ``seg/mIoU`` (mmdet/mmseg ``SemSegMetric``) -- and the log names it.

So ``det/AP_class_mean`` equals ``det/bbox_mAP`` (up to mmdet's rounding to 3 decimals) and
``seg/IoU_class_mean`` equals ``seg/mIoU / 100``.
"""
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def metric_key(name: str) -> str:
    """A class name as a metric key: whitespace becomes ``_`` (``'traffic light'`` -> ``'traffic_light'``)."""
    return re.sub(r'\s+', '_', str(name).strip())


def class_mean_std(values: Sequence[float]) -> Tuple[float, float, int]:
    """Mean and population standard deviation (ddof=0) of the finite ``values``, and how many there are.

    Returns:
        tuple: ``(mean, std, n)``; ``(nan, nan, 0)`` when no value is finite.
    """
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return float('nan'), float('nan'), 0
    return float(finite.mean()), float(finite.std(ddof=0)), int(finite.size)


def det_gt_counts(coco_api, cat_ids: Sequence[int], img_ids: Sequence[int]) -> np.ndarray:
    """Non-crowd ground-truth boxes per class, from the COCO api a ``CocoMetric`` evaluated against.

    Args:
        coco_api: ``CocoMetric._coco_api`` (its annotation file, or the ground truth it converted from the
            samples' ``instances``; ``ignore_flag=1`` boxes are ``iscrowd`` there).
        cat_ids: ``CocoMetric.cat_ids``, in label order.
        img_ids: ``CocoMetric.img_ids``, the evaluated images.

    Returns:
        np.ndarray: ``(num_classes,)`` int64 counts of boxes that are not crowd regions (COCO ignores those).
    """
    return np.asarray([len(coco_api.getAnnIds(imgIds=list(img_ids), catIds=[cid], iscrowd=False))
                       for cid in cat_ids], dtype=np.int64)


def coco_classwise_ap(values: dict, class_names: Sequence[str], gt_counts: np.ndarray) -> Dict[str, float]:
    """Per-class COCO AP@[.5:.95] from the output of ``CocoMetric(classwise=True)``.

    mmdet stores each class's AP (the mean of COCO's precision array over the IoU thresholds .50:.05:.95 and
    the recall points, area 'all', the last ``maxDets`` -- the same slice as its ``bbox_mAP``; rounded to 3
    decimals) as ``'{class}_precision'``. These entries are removed
    from ``values``.

    Args:
        values: What ``CocoMetric.compute_metrics`` returned (modified in place); empty when the model made no
            prediction at all, then every class with ground truth has AP 0.
        class_names: Detection class names, in label order.
        gt_counts: ``(num_classes,)`` non-crowd ground-truth boxes per class (:func:`det_gt_counts`).

    Returns:
        dict: class name -> AP (fraction), only for classes with ground truth.

    Raises:
        KeyError: ``values`` is not empty but lacks a class's entry (``classwise`` was not set on the metric).
    """
    out = {}
    for name, n_gt in zip(class_names, gt_counts):
        key = f'{name}_precision'
        if values:
            if key not in values:
                raise KeyError(f'CocoMetric returned no {key!r}: set classwise=True on the det metric '
                               f'(got {sorted(values)})')
            ap = float(values.pop(key))
        else:
            ap = 0.0 if n_gt > 0 else float('nan')
        if n_gt > 0:
            out[name] = 0.0 if math.isnan(ap) else ap  # nan with ground truth cannot happen in COCOeval; be safe
    return out


def semseg_classwise_iou(results: Sequence[dict], class_names: Sequence[str]) -> Tuple[Dict[str, float], list,
                                                                                         np.ndarray]:
    """Per-class IoU (fraction) from ``SemSegMetric`` results (per-image area histograms).

    Args:
        results: ``SemSegMetric.results`` entries with ``area_intersect``, ``area_union``, ``area_label``
            (``(K,)`` tensors, pixel counts of one image, ignore pixels excluded).
        class_names: Segmentation class names (K).

    Returns:
        tuple: ``(iou, no_gt_but_predicted, gt_pixels)``: class name -> IoU for every class whose union is not
        empty; the names of classes with IoU 0 only because the model predicted them where there is no
        ground truth of them at all; ``(K,)`` ground-truth pixels per class.
    """
    if not results:
        return {}, [], np.zeros(len(class_names), dtype=np.int64)
    inter = sum(np.asarray(r['area_intersect'], dtype=np.float64) for r in results)
    union = sum(np.asarray(r['area_union'], dtype=np.float64) for r in results)
    label = sum(np.asarray(r['area_label'], dtype=np.float64) for r in results)
    if len(inter) != len(class_names):
        raise ValueError(f'SemSegMetric results have {len(inter)} classes, the dataset names {len(class_names)}')
    iou, no_gt = {}, []
    for k, name in enumerate(class_names):
        if union[k] > 0:
            iou[name] = float(inter[k] / union[k])
            if label[k] == 0:
                no_gt.append(name)
    return iou, no_gt, label.astype(np.int64)


def format_class_table(title: str, value_name: str, class_names: Sequence[str], values: Dict[str, float],
                       shares: Optional[np.ndarray] = None, share_name: str = '% gt',
                       notes: Optional[Dict[str, str]] = None) -> str:
    """A markdown table: one row per class (value, share of the ground truth), then mean ± std across classes.

    Args:
        title: First line.
        value_name: Column title of the values (``'AP'``, ``'IoU'``).
        class_names: All classes, in label order (classes without a value show ``n/a``).
        values: class name -> value (fraction).
        shares: ``(K,)`` ground-truth counts per class; shown as a percentage of their sum (the paper's
            "% objects" / "% pixels" rows).
        share_name: Column title of the shares.
        notes: class name -> a note shown beside its value.
    """
    notes = notes or {}
    total = float(np.sum(shares)) if shares is not None else 0.0
    header = ['class', value_name] + ([share_name] if shares is not None else [])
    rows: List[List[str]] = []
    for k, name in enumerate(class_names):
        value = values.get(name)
        cell = 'n/a (no ground truth)' if value is None else f'{value:.3f}'
        if name in notes:
            cell += f' ({notes[name]})'
        row = [str(name), cell]
        if shares is not None:
            row.append(f'{100.0 * shares[k] / total:.2f}' if total > 0 else '0.00')
        rows.append(row)
    mean, std, n = class_mean_std(list(values.values()))
    summary = ['n/a', 'n/a'] if n == 0 else [f'{mean:.3f}', f'{std:.3f}']
    rows.append([f'mean ± std ({n} classes)', f'{summary[0]} ± {summary[1]}'] + ([''] if shares is not None else []))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' |'

    sep = '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
    return '\n'.join([title, line(header), sep] + [line(r) for r in rows])
