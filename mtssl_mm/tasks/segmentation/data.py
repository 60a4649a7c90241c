"""Segmentation's data side: ``seg_map_path`` of an annotation entry, checked map loading (:func:`load_seg_map`,
the one loader of label maps: training pipeline and offline analysis), mIoU (and IoU per class), the pixel
confusion matrix and per-image mIoU of saved predictions."""
import functools
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.evaluation import SemSegMetric
from mmengine.structures import PixelData

from ...utils.confusion import class_iou, iou_from_confusion
from ..task_data import TaskData, register_task_data

#: the value of unlabeled pixels in label maps (the datasets' converters write it; ``LoadMultiTaskAnnotations``)
IGNORE_INDEX = 255


def seg_id_table(meta: dict, num_classes: int, source: str) -> Optional[np.ndarray]:
    """The id written to the PNG for each segmentation class, or None to write the class indices (trainIds).

    Read from ``meta['seg_label_ids']`` (a sequence, one id per entry of ``seg_classes``; for Cityscapes the
    label ids of cityscapesscripts' table, see ``configs/_base_/datasets/cityscapes_multitask.py``).

    Args:
        meta (dict): The dataset metainfo.
        num_classes (int): The number of segmentation classes of the model.
        source (str): Where ``meta`` comes from, for error messages.

    Returns:
        np.ndarray | None: (num_classes,) uint8 look-up table class index -> id.

    Raises:
        ValueError: The table's length is not ``num_classes``, an id is outside 0..255, or two classes share an id.
    """
    ids = meta.get('seg_label_ids')
    if ids is None:
        return None
    ids = [int(i) for i in ids]
    if len(ids) != num_classes:
        raise ValueError(f'{source}: seg_label_ids has {len(ids)} ids, the segmentation head has {num_classes} '
                         'classes')
    if not all(0 <= i <= 255 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f'{source}: seg_label_ids must be distinct ids in 0..255 (one per class), got {ids}')
    return np.asarray(ids, np.uint8)


def seg_to_ids(pred_sem_seg, table: Optional[np.ndarray]) -> np.ndarray:
    """The predicted class map as written to the PNG: (H, W) uint8 from ``pred_sem_seg.sem_seg`` (1, H, W) class
    indices at the original image size, through ``table`` (:func:`seg_id_table`; None keeps the indices)."""
    seg = pred_sem_seg.sem_seg.detach().cpu().numpy()[0].astype(np.int64)
    return table[seg] if table is not None else seg.astype(np.uint8)


@register_task_data
class SegmentationData(TaskData):
    """Label maps: ``seg_map_path`` per entry, a single-channel PNG of class indices (``ignore_index`` unlabeled).

    - parse: ``seg_map_path`` joined with ``data_prefix['seg']``; an image labeled for ``seg`` without it is an
      error; the file's ``seg_classes`` must equal the config's (maps hold indices, not names).
    - load: labeled (or withheld): ``gt_seg_map`` (H, W) uint8 (:func:`load_seg_map`), which must be a readable
      single-channel map of exactly the image's size (a clear error names the file otherwise); not labeled:
      filled with ``ignore_index``, so that geometric transforms and batching treat every sample alike.
    - pack: mmdet's ``PackDetInputs`` (``gt_sem_seg.sem_seg`` (1, H, W) uint8); withheld: ``withheld_sem_seg``,
      ``gt_sem_seg`` all ``ignore_index``.
    - metric: mIoU (mmdet's ``SemSegMetric`` with the true pixel accuracy as ``aAcc``,
      :class:`~mtssl_mm.evaluation.PixelAccSemSegMetric`; classes from ``seg_classes``), ``mIoU`` (in %) in
      ``multitask/gmean``; class-wise: IoU per class (:meth:`classwise_report`).
    - analysis of saved predictions: the pixel confusion matrix (:func:`pixel_confusion_matrix`), mIoU per image
      (:func:`seg_image_score`).
    """

    name = 'seg'
    withheld_field = 'withheld_sem_seg'
    metric = dict(type='PixelAccSemSegMetric', iou_metrics=['mIoU'])
    main_key = ('mIoU', 0.01)
    meta_keys = dict(classes='seg_classes', palette='seg_palette')

    def check_prediction_meta(self, dataset_meta, task, source, options) -> None:
        """``seg_classes``, as many as the head's, and a valid ``seg_label_ids`` table where the metainfo has one."""
        classes = dataset_meta.get('seg_classes')
        if not classes:
            raise KeyError(f'{source}: no "seg_classes" (the seg class names)')
        if len(classes) != task.head.num_classes:
            raise ValueError(f'{source}: {len(classes)} seg_classes, the seg head has {task.head.num_classes} '
                             'classes')
        if not options.train_ids:
            seg_id_table(dataset_meta, len(classes), source)

    def prediction_to_json(self, data_sample, dataset_meta, options) -> dict:
        """``seg_ids`` (``'seg_label_ids'`` or ``'class_indices'``) and ``seg``, the single-channel uint8 PNG's path
        relative to ``out_dir`` (``seg/<name>.png``, the original image's size: Cityscapes label ids where the
        metainfo has ``seg_label_ids`` and not ``train_ids``, else the class indices); without ``out_dir``
        ``sem_seg``, the (H, W) uint8 array (not JSON).

        Raises:
            OSError: The PNG could not be written.
        """
        table = None if options.train_ids else seg_id_table(dataset_meta, len(dataset_meta['seg_classes']), 'metainfo')
        seg = seg_to_ids(data_sample.pred_sem_seg, table)
        result = dict(seg_ids='class_indices' if table is None else 'seg_label_ids')
        if not options.out_dir:
            result['sem_seg'] = seg
            return result
        result['seg'] = osp.join('seg', f'{options.name}.png')
        path = osp.join(options.out_dir, result['seg'])
        os.makedirs(osp.dirname(path), exist_ok=True)
        if not mmcv.imwrite(seg, path):
            raise OSError(f'could not write {path}')
        return result

    def check_metainfo(self, configured, from_file, ann_file) -> None:
        mine, theirs = configured.get('seg_classes'), from_file.get('seg_classes')
        if mine is not None and theirs is not None and list(mine) != list(theirs):
            raise ValueError(f'{ann_file}: metainfo seg_classes {list(theirs)} differ from the config\'s '
                             f'seg_classes {list(mine)}')

    def parse(self, raw, info, labeled, dataset) -> None:
        seg_map = raw.get('seg_map_path')
        if labeled and not seg_map:
            raise KeyError(f'{dataset.ann_file}: image {raw["img_path"]} is labeled for "seg" but has no '
                           'seg_map_path')
        info['seg_map_path'] = osp.join(dataset.data_prefix.get('seg', ''), seg_map) if seg_map else None

    def load(self, results, loader, labeled) -> None:
        if labeled:
            self._load_checked(results, loader)
        else:
            h, w = results['ori_shape']
            results['gt_seg_map'] = np.full((h, w), loader.ignore_index, dtype=np.uint8)
            results['ignore_index'] = loader.ignore_index

    @staticmethod
    def _load_checked(results: dict, loader) -> None:
        results['gt_seg_map'] = load_seg_map(results, shape=results['ori_shape'], loader=loader)
        results['ignore_index'] = loader.ignore_index

    def take_withheld(self, results):
        if results.get('gt_seg_map') is None:
            raise KeyError(f'PackMultiTaskInputs: sample {results.get("img_path")} withholds "seg" but has no '
                           '"gt_seg_map"; load it with LoadMultiTaskAnnotations')
        seg = results['gt_seg_map']
        ignore_index = results.get('ignore_index', 255)
        data = PixelData(sem_seg=torch.from_numpy(seg[None].copy()))
        data.set_metainfo(dict(ignore_index=ignore_index))
        results['gt_seg_map'] = np.full_like(seg, ignore_index)
        return {self.withheld_field: data}

    # ---------------------------------------------------------------- MultiTaskMetric
    def classwise_report(self, metric, task_results, values):
        """IoU per class (fraction) and ground-truth pixels per class, for a ``SemSegMetric`` (None for another
        metric), from its per-image area histograms.

        A class with neither ground-truth nor predicted pixels has no IoU (0/0): no ``seg/IoU/<class>`` key, out of
        the mean and std. A class without ground-truth pixels that the model predicts somewhere has IoU 0 and
        *counts* -- exactly as in ``seg/mIoU`` (mmdet/mmseg ``SemSegMetric``) -- and a warning names it. So
        ``seg/IoU_class_mean`` equals ``seg/mIoU / 100``.
        """
        if not isinstance(metric, SemSegMetric):
            return None
        classes = metric.dataset_meta['classes']
        per_class, no_gt, gt = semseg_classwise_iou(task_results, classes)
        title = (f'{self.name}: class-wise IoU on the {len(task_results)} images labeled for {self.name} (fraction; '
                 'classes with neither ground truth nor prediction: n/a, left out of mean ± std)')
        report = dict(
            name='IoU',
            classes=classes,
            values=per_class,
            gt_counts=gt,
            title=title,
            share_name='% pixels',
            notes={c: 'no ground truth, predicted: counts as 0'
                   for c in no_gt})
        if no_gt:
            report['warning'] = (f'{self.name} classes {no_gt} have no ground-truth pixels in the evaluated images '
                                 'but are predicted; their IoU is 0 and counts in the class mean (as in mIoU)')
        return report

    # offline analysis of saved predictions (mtssl_mm/evaluation/analysis.py)
    def confusion_matrix(self, pairs, num_classes, ignore_index: int = IGNORE_INDEX):
        """:func:`pixel_confusion_matrix`: ``(K, K)`` pixel counts."""
        return pixel_confusion_matrix(pairs, num_classes, ignore_index)

    def image_score(self, info, pred, num_classes, score_thr: float = 0.0) -> float:
        """:func:`seg_image_score`: mIoU of the image (``score_thr`` is not used: a class map has no scores)."""
        return seg_image_score(info, pred, num_classes)


# ------------------------------------------------------------------------------------ loading label maps
@functools.lru_cache(maxsize=None)
def _default_loader() -> LoadAnnotations:
    return LoadAnnotations(with_bbox=False, with_label=False, with_seg=True)


def load_seg_map(info: dict,
                 shape: Optional[Sequence[int]] = None,
                 loader: Optional[LoadAnnotations] = None) -> np.ndarray:
    """The label map of a seg-labeled image: the one loader of the package (training pipeline, offline analysis).

    Decoded as mmdet's ``LoadAnnotations`` decodes it (``loader``'s ``backend_args``, ``imdecode_backend``,
    ``reduce_zero_label``; ``info``'s ``label_map`` if any), then checked.

    Args:
        info (dict): A data info (``dataset.get_data_info(i)``) or the pipeline's results: ``seg_map_path``, and
            ``img_path`` for the errors.
        shape (Sequence[int], optional): ``(H, W)`` the map must have (its image's size, ``ori_shape``). Default:
            not checked.
        loader (LoadAnnotations, optional): The pipeline's loader (``LoadMultiTaskAnnotations``). Default: mmdet's
            ``LoadAnnotations(with_seg=True)`` with its defaults (local files, cv2).

    Returns:
        np.ndarray: ``(H, W)`` class indices as stored (uint8 for an 8-bit PNG), ``ignore_index`` (255) unlabeled.

    Raises:
        KeyError: ``info`` has no ``seg_map_path``.
        FileNotFoundError: The file does not exist (names it and its image).
        ValueError: The file is not a readable image, not single-channel, or not of size ``shape`` (names it).
    """
    path, img = info.get('seg_map_path'), info.get('img_path')
    if path is None:
        raise KeyError(f'image {img} is labeled for "seg" but has no seg_map_path')
    out = {k: info[k] for k in ('seg_map_path', 'label_map') if k in info}
    try:
        (loader or _default_loader())._load_seg_map(out)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'seg map {path} (of image {img}) not found') from e
    except Exception as e:  # a corrupt or empty file: cv2 decodes None (mmdet then fails on it) or raises
        raise ValueError(f'seg map {path} (of image {img}): not a readable image ({type(e).__name__}: {e})') from e
    seg = out.get('gt_seg_map')
    if not isinstance(seg, np.ndarray) or seg.ndim != 2:
        raise ValueError(f'seg map {path}: expected a single-channel label image, got shape '
                         f'{getattr(seg, "shape", None)}')
    if shape is not None and seg.shape != tuple(shape):
        raise ValueError(f'seg map {path}: size {seg.shape[1]}x{seg.shape[0]} (WxH) differs from its image '
                         f'{img} ({shape[1]}x{shape[0]})')
    return seg


# ---------------------------------------------------------------------------------- class-wise IoU
def semseg_classwise_iou(results: Sequence[dict],
                         class_names: Sequence[str]) -> Tuple[Dict[str, float], List[str], np.ndarray]:
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
    ious = class_iou(inter, union)
    iou, no_gt = {}, []
    for k, name in enumerate(class_names):
        if union[k] > 0:
            iou[name] = float(ious[k])
            if label[k] == 0:
                no_gt.append(name)
    return iou, no_gt, label.astype(np.int64)


# ------------------------------------------------------------------- analysis of saved predictions
# Ground truth from the dataset (``seg_map_path``, a PNG of class indices, 255 = ignore), predictions from
# ``tools/test.py --out`` (``pred_sem_seg.sem_seg`` (1, H, W) at the original size).
def _image_shape(info: dict) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of the image of a data info, where it has ``height`` and ``width``."""
    return (int(info['height']), int(info['width'])) if 'height' in info and 'width' in info else None


def pred_seg_map(pred: dict) -> np.ndarray:
    """The (H, W) predicted class map."""
    if 'pred_sem_seg' not in pred:
        raise KeyError(f'prediction of {pred.get("img_path")} has no pred_sem_seg (was seg predicted? '
                       '--tasks det drops it)')
    seg = pred['pred_sem_seg']['sem_seg']
    seg = seg.detach().cpu().numpy() if hasattr(seg, 'detach') else np.asarray(seg)
    return seg.reshape(seg.shape[-2:])


def seg_confusion_single(gt: np.ndarray,
                         pred: np.ndarray,
                         num_classes: int,
                         ignore_index: int = IGNORE_INDEX,
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


def pixel_confusion_matrix(pairs: Sequence[Tuple[dict, dict]],
                           num_classes: int,
                           ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Pixel confusion matrix over ``pairs`` (``(data info, prediction)`` of seg-labeled images): ``[gt, pred]``
    pixel counts, (K, K) int64.

    Pixels whose ground truth is ``ignore_index`` are left out. The diagonal over the row sums is each class's
    recall; ``diag / (row + col - diag)`` its IoU (:func:`~mtssl_mm.utils.confusion.iou_from_confusion`).
    """
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for info, pred in pairs:
        gt, pr = load_seg_map(info, _image_shape(info)), pred_seg_map(pred)
        cm += seg_confusion_single(gt, pr, num_classes, ignore_index, name=info['img_path'])
    return cm


def seg_image_score(info: dict, pred: dict, num_classes: int, ignore_index: int = IGNORE_INDEX) -> float:
    """mIoU (fraction) of one image over the classes present in its ground truth or its prediction
    (non-ignored pixels); NaN when the image has no labeled pixel."""
    cm = seg_confusion_single(
        load_seg_map(info, _image_shape(info)), pred_seg_map(pred), num_classes, ignore_index, info['img_path'])
    return iou_from_confusion(cm)[1]
