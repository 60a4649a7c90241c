"""Offline analysis of saved predictions (``tools/test.py --out x.pkl``): confusion matrices and per-image scores.

Every function here counts only the images labeled for its task (``labeled_tasks``): an image that is not
labeled for detection adds no false positive and no missed box to the detection matrix, an image that is not
labeled for segmentation adds no pixel (the evaluator does the same, see ``MultiTaskMetric``). Used by
``tools/analysis/confusion_matrix.py`` and ``tools/analysis/analyze_results.py``.

Ground truth comes from the dataset (``dataset.get_data_info(i)``: ``instances`` with ``bbox`` [x1, y1, x2, y2]
in original-image pixels, ``bbox_label``, ``ignore_flag``; ``seg_map_path``, a PNG of class indices, 255 =
ignore), predictions from the pickle (``pred_instances`` boxes in original-image pixels, ``pred_sem_seg.sem_seg``
(1, H, W) at the original size), matched by ``img_path``.
"""
import math
import pickle
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmdet.evaluation.functional import bbox_overlaps  # numpy, as mmdet's confusion_matrix.py uses it

IGNORE_INDEX = 255


# ------------------------------------------------------------------------------------------ loading
def build_test_dataset(cfg):
    """The config's test dataset, built in the config's default scope (mmdet) as the Runner builds it."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return DATASETS.build(cfg.test_dataloader.dataset)


def load_predictions(path: str) -> List[dict]:
    """The list of per-image prediction dicts that ``tools/test.py --out`` (mmengine ``DumpResults``) wrote."""
    with open(path, 'rb') as f:
        preds = pickle.load(f)
    if not isinstance(preds, list) or not all(isinstance(p, dict) and 'img_path' in p for p in preds):
        raise ValueError(f'{path}: expected a list of per-image dicts with "img_path" (tools/test.py --out)')
    return preds


def match_to_dataset(preds: Sequence[dict], dataset) -> List[Tuple[dict, dict]]:
    """Pairs ``(data_info, prediction)`` in dataset order, matched by ``img_path``.

    Raises:
        KeyError: A prediction of an image the dataset does not have, or an image of the dataset without a
            prediction (names the first few).
    """
    by_path = {}
    for p in preds:
        by_path[p['img_path']] = p
    pairs, missing = [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if info['img_path'] in by_path:
            pairs.append((info, by_path.pop(info['img_path'])))
        else:
            missing.append(info['img_path'])
    if by_path:
        raise KeyError(f'{len(by_path)} predicted images are not in the dataset, e.g. {sorted(by_path)[:3]}; '
                       'use the config the predictions were made with')
    if missing:
        raise KeyError(f'{len(missing)} images of the dataset have no prediction, e.g. {missing[:3]}')
    return pairs


def labeled_for(pairs: Sequence[Tuple[dict, dict]], task: str) -> List[Tuple[dict, dict]]:
    """The pairs whose image is labeled for ``task`` (the dataset's ``labeled_tasks``)."""
    for info, _ in pairs:
        if 'labeled_tasks' not in info:
            raise KeyError(f'data info of {info.get("img_path")} has no "labeled_tasks"')
    return [(info, pred) for info, pred in pairs if task in info['labeled_tasks']]


def load_seg_map(info: dict) -> np.ndarray:
    """The (H, W) class-index map of a seg-labeled image (255 = ignore)."""
    import mmcv
    path = info.get('seg_map_path')
    if path is None:
        raise KeyError(f'image {info.get("img_path")} is labeled for "seg" but has no seg_map_path')
    seg = mmcv.imread(path, flag='unchanged')
    if seg is None:
        raise FileNotFoundError(f'seg map {path} (of image {info.get("img_path")}) not found')
    if seg.ndim != 2:
        raise ValueError(f'seg map {path}: expected a single-channel label image, got shape {seg.shape}')
    return seg


def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else np.asarray(x)


def gt_boxes(info: dict) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes (N, 4), labels (N,), ignore boxes (M, 4))`` of one image's ``instances``."""
    inst = info.get('instances', [])
    keep = [i for i in inst if not i.get('ignore_flag', 0)]
    ign = [i for i in inst if i.get('ignore_flag', 0)]
    return (np.asarray([i['bbox'] for i in keep], dtype=np.float32).reshape(-1, 4),
            np.asarray([i['bbox_label'] for i in keep], dtype=np.int64),
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


def pred_seg_map(pred: dict) -> np.ndarray:
    """The (H, W) predicted class map."""
    if 'pred_sem_seg' not in pred:
        raise KeyError(f'prediction of {pred.get("img_path")} has no pred_sem_seg (was seg predicted? '
                       '--tasks det drops it)')
    seg = _to_numpy(pred['pred_sem_seg']['sem_seg'])
    return seg.reshape(seg.shape[-2:])


# ------------------------------------------------------------------------------------ confusion matrices
def det_confusion_matrix(pairs: Sequence[Tuple[dict, dict]], num_classes: int, score_thr: float = 0.3,
                         tp_iou_thr: float = 0.5) -> np.ndarray:
    """mmdet's detection confusion matrix over the det-labeled images of ``pairs``.

    As mmdet's ``tools/analysis_tools/confusion_matrix.py`` (``analyze_per_img_dets``): every detection with
    score >= ``score_thr`` adds 1 to ``[gt_label, det_label]`` for each ground-truth box it overlaps with
    IoU >= ``tp_iou_thr``; one that overlaps none adds 1 to ``[background, det_label]`` (a false positive); every
    ground-truth box that no detection of its class overlaps adds 1 to ``[gt_label, background]`` (missed).
    Crowd boxes (``ignore_flag=1``) are not ground truth, and a detection that overlaps none but a crowd box
    counts nowhere (COCO ignores it too). Images not labeled for det are skipped.

    Returns:
        np.ndarray: ``(K + 1, K + 1)`` float64 counts; rows ground truth, columns predictions; index K is
        the background.
    """
    cm = np.zeros((num_classes + 1, num_classes + 1), dtype=np.float64)
    for info, pred in labeled_for(pairs, 'det'):
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


def seg_confusion_matrix(pairs: Sequence[Tuple[dict, dict]], num_classes: int,
                         ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Pixel confusion matrix over the seg-labeled images of ``pairs``: ``[gt, pred]`` pixel counts, (K, K) int64.

    Pixels whose ground truth is ``ignore_index`` are left out; images not labeled for seg are skipped.
    The diagonal over the row sums is each class's recall; ``diag / (row + col - diag)`` its IoU.
    """
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for info, pred in labeled_for(pairs, 'seg'):
        gt, pr = load_seg_map(info), pred_seg_map(pred)
        cm += seg_confusion_single(gt, pr, num_classes, ignore_index, name=info['img_path'])
    return cm


def seg_confusion_single(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX,
                         name: str = 'image') -> np.ndarray:
    """(K, K) int64 ``[gt, pred]`` pixel counts of one image; ``gt == ignore_index`` pixels left out."""
    if gt.shape != pred.shape:
        raise ValueError(f'{name}: ground-truth map {gt.shape} and prediction {pred.shape} differ in size '
                         '(predictions must be at the original size: rescale=True)')
    valid = gt != ignore_index
    g, p = gt[valid].astype(np.int64), pred[valid].astype(np.int64)
    if len(g) and (g.max() >= num_classes or p.max() >= num_classes or p.min() < 0):
        raise ValueError(f'{name}: a class index outside 0..{num_classes - 1} (and the ignore index {ignore_index})')
    return np.bincount(g * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


# ----------------------------------------------------------------------------------- per-image scores
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


def seg_image_score(info: dict, pred: dict, num_classes: int, ignore_index: int = IGNORE_INDEX) -> float:
    """mIoU (fraction) of one image over the classes present in its ground truth or its prediction
    (non-ignored pixels); NaN when the image has no labeled pixel."""
    cm = seg_confusion_single(load_seg_map(info), pred_seg_map(pred), num_classes, ignore_index, info['img_path'])
    return iou_from_confusion(cm)[1]


def iou_from_confusion(cm: np.ndarray) -> Tuple[np.ndarray, float]:
    """Per-class IoU (NaN where a class is in neither ground truth nor prediction) and their mean."""
    diag = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - diag
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = np.where(union > 0, diag / np.maximum(union, 1), np.nan)
    return iou, float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan')


def image_scores(pairs: Sequence[Tuple[dict, dict]], task: str, num_classes: int,
                 score_thr: float = 0.0) -> List[Dict]:
    """Per-image score of ``task`` over the images labeled for it: ``[{'img_path', 'score'}]`` in dataset order.

    ``det``: :func:`det_image_score`; ``seg``: :func:`seg_image_score` (images without labeled pixels left out).
    """
    if task not in ('det', 'seg'):
        raise ValueError(f'unknown task {task!r} (det, seg)')
    out = []
    for info, pred in labeled_for(pairs, task):
        if task == 'det':
            score = det_image_score(info, pred, num_classes, score_thr)
        else:
            score = seg_image_score(info, pred, num_classes)
        if not math.isnan(score):
            out.append(dict(img_path=info['img_path'], score=score))
    return out


def worst_and_best(scores: Sequence[Dict], topk: int) -> Tuple[List[Dict], List[Dict]]:
    """The ``topk`` lowest-scoring and the ``topk`` highest-scoring entries (ties: dataset order)."""
    order = sorted(range(len(scores)), key=lambda i: (scores[i]['score'], i))
    worst = [scores[i] for i in order[:topk]]
    best = [scores[i] for i in sorted(range(len(scores)), key=lambda i: (-scores[i]['score'], i))[:topk]]
    return worst, best


def normalise_rows(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum, in % (rows without counts stay 0)."""
    sums = cm.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(cm * 100.0, sums, out=np.zeros(cm.shape, dtype=np.float64), where=sums > 0)


def plot_confusion_matrix(cm: np.ndarray, labels: Sequence[str], out_file: Optional[str] = None,
                          title: str = 'Normalized confusion matrix (%)', show: bool = False) -> None:
    """Row-normalised matrix as an image (rows: ground truth, columns: prediction), values in each cell."""
    import matplotlib
    if not show:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    norm = normalise_rows(cm)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * n), max(3.5, 0.45 * n)), dpi=120)
    im = ax.imshow(norm, cmap='plasma', vmin=0, vmax=100)
    fig.colorbar(im, ax=ax)
    ax.set_title(title)
    ax.set_xlabel('Prediction')
    ax.set_ylabel('Ground truth')
    ax.set_xticks(range(n), labels, rotation=60, ha='right', fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    for i in range(n):
        for j in range(n):
            if norm[i, j] >= 0.5:
                ax.text(j, i, f'{norm[i, j]:.0f}', ha='center', va='center', fontsize=6,
                        color='w' if norm[i, j] < 50 else 'k')
    fig.tight_layout()
    if out_file:
        fig.savefig(out_file)
    if show:
        plt.show()
    plt.close(fig)
