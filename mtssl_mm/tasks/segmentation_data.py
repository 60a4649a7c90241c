"""Segmentation's data side: ``seg_map_path`` of an annotation entry, checked map loading, mIoU."""
import os.path as osp

import numpy as np
import torch
from mmengine.structures import PixelData

from .task_data import TaskData, register_task_data


@register_task_data
class SegmentationData(TaskData):
    """Label maps: ``seg_map_path`` per entry, a single-channel PNG of class indices (``ignore_index`` unlabeled).

    - parse: ``seg_map_path`` joined with ``data_prefix['seg']``; an image labeled for ``seg`` without it is an
      error; the file's ``seg_classes`` must equal the config's (maps hold indices, not names).
    - load: labeled (or withheld): ``gt_seg_map`` (H, W) uint8, which must be a single-channel map of exactly
      the image's size (a clear error names the file otherwise); not labeled: filled with ``ignore_index``, so
      that geometric transforms and batching treat every sample alike.
    - pack: mmdet's ``PackDetInputs`` (``gt_sem_seg.sem_seg`` (1, H, W) uint8); withheld: ``withheld_sem_seg``,
      ``gt_sem_seg`` all ``ignore_index``.
    - metric: mIoU (mmdet's ``SemSegMetric`` with the true pixel accuracy as ``aAcc``,
      :class:`~mtssl_mm.evaluation.PixelAccSemSegMetric`; classes from ``seg_classes``), ``mIoU`` (in %) in
      ``multitask/gmean``.
    """

    name = 'seg'
    withheld_field = 'withheld_sem_seg'
    metric = dict(type='PixelAccSemSegMetric', iou_metrics=['mIoU'])
    main_key = ('mIoU', 0.01)
    meta_keys = dict(classes='seg_classes', palette='seg_palette')

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
        path = results.get('seg_map_path')
        if path is None:
            raise KeyError(f'image {results.get("img_path")} is labeled for "seg" but has no seg_map_path')
        try:
            loader._load_seg_map(results)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'seg map {path} (of image {results.get("img_path")}) not found') from e
        seg = results['gt_seg_map']
        if seg is None or seg.ndim != 2:
            shape = None if seg is None else seg.shape
            raise ValueError(f'seg map {path}: expected a single-channel label image, got shape {shape}')
        if seg.shape != tuple(results['ori_shape']):
            raise ValueError(f'seg map {path}: size {seg.shape[1]}x{seg.shape[0]} (WxH) differs from its image '
                             f'{results.get("img_path")} ({results["ori_shape"][1]}x{results["ori_shape"][0]})')

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
