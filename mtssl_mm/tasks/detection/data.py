"""Detection's data side: ``instances`` of an annotation entry, mmdet's box loading and packing, COCO mAP (and AP
per class), the box confusion matrix and per-image AP of saved predictions."""
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from mmdet.evaluation import CocoMetric
from mmdet.evaluation.functional import bbox_overlaps  # numpy, as mmdet's confusion_matrix.py uses it
from mmengine.structures import InstanceData

from ..task_data import TaskData, register_task_data


def boxes_to_json(pred_instances, classes: Sequence[str], score_thr: float) -> List[Dict]:
    """COCO-style boxes of one image, best first.

    Args:
        pred_instances (InstanceData): ``bboxes`` (N, 4) ``[x1, y1, x2, y2]`` in pixels of the original image,
            ``scores`` (N,), ``labels`` (N,) class indices.
        classes (Sequence[str]): Detection class names.
        score_thr (float): Boxes with a score below it are left out.

    Returns:
        list[dict]: ``{"bbox": [x, y, w, h], "category": name, "category_id": index, "score": s}`` (pixels).
    """
    bboxes = pred_instances.bboxes.detach().cpu().numpy().astype(float)
    scores = pred_instances.scores.detach().cpu().numpy().astype(float)
    labels = pred_instances.labels.detach().cpu().numpy().astype(int)
    out = []
    for i in np.argsort(-scores, kind='stable'):
        if scores[i] < score_thr:
            continue
        x1, y1, x2, y2 = bboxes[i].tolist()
        label = int(labels[i])
        if not 0 <= label < len(classes):
            raise ValueError(f'predicted class index {label} is outside the {len(classes)} detection classes')
        out.append(
            dict(bbox=[x1, y1, x2 - x1, y2 - y1], category=classes[label], category_id=label, score=float(scores[i])))
    return out


@register_task_data
class DetectionData(TaskData):
    """Boxes: ``instances`` ``[{"bbox": [x1, y1, x2, y2], "label": name, "ignore_flag": 0|1}, ...]`` per entry.

    - parse: class names are mapped to indices of ``metainfo['classes']`` (an unknown name or a degenerate box is
      an error naming the annotation file and the image); ``ignore_flag=1`` marks crowd / ignore regions.
    - load: labeled (or withheld): ``gt_bboxes`` (N, 4) in pixels, ``gt_bboxes_labels`` (N,), ``gt_ignore_flags``
      (N,), N may be 0 (an all-negative image); not labeled: the same keys with N = 0.
    - pack: mmdet's ``PackDetInputs`` (``gt_instances``, ``ignored_instances``); withheld: ``withheld_instances``
      (``bboxes`` (N, 4) float32 in input pixels, ``labels`` (N,) int64, crowd boxes left out), the training
      keys emptied.
    - metric: COCO bbox mAP (mmdet ``CocoMetric``), ``bbox_mAP`` in ``multitask/gmean``; class-wise: COCO
      AP@[.5:.95] per class (:meth:`classwise_report`).
    - analysis of saved predictions: mmdet's box confusion matrix (:func:`box_confusion_matrix`), AP@[.5:.95] per
      image (:func:`det_image_score`).
    """

    name = 'det'
    required_meta = ('classes', )
    withheld_field = 'withheld_instances'
    metric = dict(type='CocoMetric', metric='bbox')
    main_key = ('bbox_mAP', 1.0)
    meta_keys = {}

    def check_prediction_meta(self, dataset_meta, task, source, options) -> None:
        """``classes``, as many as the detection head's."""
        classes = dataset_meta.get('classes')
        if not classes:
            raise KeyError(f'{source}: no "classes" (the det class names)')
        if len(classes) != task.head.num_classes:
            raise ValueError(f'{source}: {len(classes)} classes, the det head has {task.head.num_classes} classes')

    def prediction_to_json(self, data_sample, dataset_meta, options) -> dict:
        """``boxes``: :func:`boxes_to_json` (COCO ``[x, y, w, h]`` in original-image pixels, score >=
        ``options.score_thr``, best first)."""
        return dict(boxes=boxes_to_json(data_sample.pred_instances, dataset_meta['classes'], options.score_thr))

    def parse(self, raw, info, labeled, dataset) -> None:
        name = raw['img_path']
        classes = list(dataset._metainfo.get('classes', ()))
        instances = []
        for inst in raw.get('instances', []):
            label = inst.get('label')
            if label not in classes:
                raise ValueError(f'{dataset.ann_file}: image {name}: unknown class name {label!r}; '
                                 f'known classes: {classes}')
            x1, y1, x2, y2 = (float(v) for v in inst['bbox'])
            if not (x2 > x1 and y2 > y1):
                raise ValueError(f'{dataset.ann_file}: image {name}: degenerate box {inst["bbox"]} '
                                 f'(expected [x1, y1, x2, y2] with x2 > x1, y2 > y1)')
            instances.append(
                dict(
                    bbox=[x1, y1, x2, y2], bbox_label=classes.index(label), ignore_flag=int(inst.get('ignore_flag',
                                                                                                     0))))
        info['instances'] = instances

    def load(self, results, loader, labeled) -> None:
        if not labeled:
            results['instances'] = []
        loader._load_bboxes(results)
        loader._load_labels(results)

    def take_withheld(self, results):
        name = results.get('img_path')
        for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags'):
            if key not in results:
                raise KeyError(f'PackMultiTaskInputs: sample {name} withholds "det" but has no "{key}"; '
                               'load it with LoadMultiTaskAnnotations')
        boxes, labels, ignore = results['gt_bboxes'], results['gt_bboxes_labels'], results['gt_ignore_flags']
        keep = np.asarray(ignore) == 0
        tensor = boxes.tensor if hasattr(boxes, 'tensor') else torch.as_tensor(np.asarray(boxes))
        withheld = InstanceData(
            bboxes=tensor[torch.from_numpy(keep)].float().reshape(-1, 4),
            labels=torch.as_tensor(np.asarray(labels)[keep], dtype=torch.long))
        none = np.zeros(len(keep), dtype=bool)  # what an unlabeled sample carries: N = 0, same types
        results['gt_bboxes'], results['gt_bboxes_labels'] = boxes[none], labels[none]
        results['gt_ignore_flags'] = ignore[none]
        if 'instances' in results:  # original-resolution boxes, for meta_keys that carry them
            results['instances'] = []
        return {self.withheld_field: withheld}

    # ---------------------------------------------------------------- MultiTaskMetric
    def prepare_metric(self, metric, classwise: bool) -> None:
        """A ``CocoMetric`` reports each class's AP when class-wise results are asked for."""
        if classwise and isinstance(metric, CocoMetric):
            metric.classwise = True  # mmdet computes each class's AP from COCO's precision array

    def classwise_report(self, metric, task_results, values):
        """COCO AP@[.5:.95] per class (fraction) and non-crowd ground-truth boxes per class, for a ``CocoMetric``
        (None for another metric).

        COCO gives no AP for a class without a (non-crowd) ground-truth box (its precision is -1): the class has no
        ``det/AP/<class>`` key and stays out of the mean and std, as it stays out of COCO's mAP; so
        ``det/AP_class_mean`` equals ``det/bbox_mAP`` (up to mmdet's rounding to 3 decimals). mmdet's
        ``'{class}_precision'`` entries are taken out of ``values``.
        """
        if not isinstance(metric, CocoMetric):
            return None
        classes = metric.dataset_meta['classes']
        gt = det_gt_counts(metric._coco_api, metric.cat_ids, metric.img_ids)
        title = (f'{self.name}: class-wise COCO AP@[.5:.95] on the {len(task_results)} images labeled for '
                 f'{self.name} (classes without ground-truth boxes: n/a, left out of mean ± std)')
        return dict(
            name='AP',
            classes=classes,
            values=coco_classwise_ap(values, classes, gt),
            gt_counts=gt,
            title=title,
            share_name='% objects',
            notes={})

    # offline analysis of saved predictions (mtssl_mm/evaluation/analysis.py)
    def confusion_matrix(self, pairs, num_classes, score_thr: float = 0.3, tp_iou_thr: float = 0.5):
        """:func:`box_confusion_matrix`: ``(K + 1, K + 1)``, index K the background."""
        return box_confusion_matrix(pairs, num_classes, score_thr, tp_iou_thr)

    def image_score(self, info, pred, num_classes, score_thr: float = 0.0) -> float:
        """:func:`det_image_score`: AP@[.5:.95] of the image."""
        return det_image_score(info, pred, num_classes, score_thr)


# ------------------------------------------------------------------------------------ class-wise COCO AP
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
    return np.asarray([len(coco_api.getAnnIds(imgIds=list(img_ids), catIds=[cid], iscrowd=False)) for cid in cat_ids],
                      dtype=np.int64)


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


# ------------------------------------------------------------------- analysis of saved predictions
# Ground truth from the dataset (``instances`` with ``bbox`` [x1, y1, x2, y2] in original-image pixels,
# ``bbox_label``, ``ignore_flag``), predictions from ``tools/test.py --out`` (``pred_instances`` in the same pixels).
def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else np.asarray(x)


def gt_boxes(info: dict) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes (N, 4), labels (N,), ignore boxes (M, 4))`` of one image's ``instances`` (pixels)."""
    inst = info.get('instances', [])
    keep = [i for i in inst if not i.get('ignore_flag', 0)]
    ign = [i for i in inst if i.get('ignore_flag', 0)]
    return (np.asarray([i['bbox'] for i in keep],
                       dtype=np.float32).reshape(-1, 4), np.asarray([i['bbox_label'] for i in keep], dtype=np.int64),
            np.asarray([i['bbox'] for i in ign], dtype=np.float32).reshape(-1, 4))


def pred_boxes(pred: dict, score_thr: float = 0.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes (N, 4), scores (N,), labels (N,))`` of the predictions with score >= ``score_thr``."""
    if 'pred_instances' not in pred:
        raise KeyError(f'prediction of {pred.get("img_path")} has no pred_instances (was det predicted? '
                       '--tasks seg drops it)')
    inst = pred['pred_instances']
    boxes = _to_numpy(inst['bboxes']).astype(np.float32).reshape(-1, 4)
    scores = _to_numpy(inst['scores']).astype(np.float32)
    labels = _to_numpy(inst['labels']).astype(np.int64)
    keep = scores >= score_thr
    return boxes[keep], scores[keep], labels[keep]


def box_confusion_matrix(pairs: Sequence[Tuple[dict, dict]],
                         num_classes: int,
                         score_thr: float = 0.3,
                         tp_iou_thr: float = 0.5) -> np.ndarray:
    """mmdet's detection confusion matrix over ``pairs`` (``(data info, prediction)`` of det-labeled images).

    As mmdet's ``tools/analysis_tools/confusion_matrix.py`` (``analyze_per_img_dets``): every detection with
    score >= ``score_thr`` adds 1 to ``[gt_label, det_label]`` for each ground-truth box it overlaps with
    IoU >= ``tp_iou_thr``; one that overlaps none adds 1 to ``[background, det_label]`` (a false positive); every
    ground-truth box that no detection of its class overlaps adds 1 to ``[gt_label, background]`` (missed).
    Crowd boxes (``ignore_flag=1``) are not ground truth, and a detection that overlaps none but a crowd box
    counts nowhere (COCO ignores it too).

    Returns:
        np.ndarray: ``(K + 1, K + 1)`` float64 counts; rows ground truth, columns predictions; index K is
        the background.
    """
    cm = np.zeros((num_classes + 1, num_classes + 1), dtype=np.float64)
    for info, pred in pairs:
        gb, gl, ignore = gt_boxes(info)
        db, _, dl = pred_boxes(pred, score_thr)
        if (gl >= num_classes).any() or (dl >= num_classes).any():
            raise ValueError(f'{info["img_path"]}: a box label is not a class index (0..{num_classes - 1})')
        ious = bbox_overlaps(db, gb)
        ign_ious = bbox_overlaps(db, ignore)
        matched_gt = np.zeros(len(gb), dtype=bool)
        for i, label in enumerate(dl):
            hits = np.nonzero(ious[i] >= tp_iou_thr)[0]
            for j in hits:
                cm[gl[j], label] += 1
                if gl[j] == label:
                    matched_gt[j] = True
            if len(hits) == 0 and not (ign_ious.shape[1] and (ign_ious[i] >= tp_iou_thr).any()):
                cm[num_classes, label] += 1
        for j in np.nonzero(~matched_gt)[0]:
            cm[gl[j], num_classes] += 1
    return cm


def det_image_score(info: dict, pred: dict, num_classes: int, score_thr: float = 0.0) -> float:
    """AP@[.5:.95] of one image: mmdet's ``eval_map`` AP (area under the VOC-style precision/recall curve, per
    class with ground truth, averaged over those classes) at IoU .50:.05:.95, averaged -- the score of mmdet's
    ``analyze_results.py``, computed with the same ``tpfp_default`` / ``average_precision`` but without a process
    pool per call. Crowd boxes are ignore regions.

    An image without (non-crowd) ground-truth boxes scores 1 when it has no detection with score >=
    ``score_thr`` and 0 otherwise (``eval_map`` would give 0 to a correct empty prediction).
    """
    from mmdet.evaluation.functional.mean_ap import average_precision, tpfp_default
    gb, gl, ignore = gt_boxes(info)
    db, ds, dl = pred_boxes(pred, score_thr)
    if len(gb) == 0:
        return 1.0 if len(db) == 0 else 0.0
    aps_per_thr = []
    for thr in np.linspace(.5, .95, 10):
        aps = []
        for k in np.unique(gl):
            m = dl == k
            dets = np.concatenate([db[m], ds[m, None]], axis=1).reshape(-1, 5)
            dets = dets[np.argsort(-dets[:, 4], kind='stable')]
            n_gt = int((gl == k).sum())
            tp, fp = tpfp_default(dets, gb[gl == k], ignore, iou_thr=float(thr))
            tp, fp = np.cumsum(tp[0]), np.cumsum(fp[0])
            recall = tp / n_gt
            precision = tp / np.maximum(tp + fp, np.finfo(np.float32).eps)
            aps.append(float(average_precision(recall, precision, mode='area')))
        aps_per_thr.append(np.mean(aps))
    return float(np.mean(aps_per_thr))
