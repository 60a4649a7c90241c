"""Load the labels a sample has, and mark the ones it has not."""
import numpy as np
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadMultiTaskAnnotations(LoadAnnotations):
    """Load boxes and the segmentation map of a partially labeled sample.

    Runs after ``LoadImageFromFile``. What is loaded depends on ``results['labeled_tasks']``
    (set by :class:`MultiTaskDataset`):

    - labeled for ``det``: ``gt_bboxes`` (N, 4) in pixels, ``gt_bboxes_labels`` (N,), ``gt_ignore_flags`` (N,);
      N may be 0 (an all-negative image).
    - not labeled for ``det``: the same keys with N = 0; ``labeled_tasks`` is what tells the model that this
      sample has no detection target at all.
    - labeled for ``seg``: ``gt_seg_map`` (H, W) uint8 from ``seg_map_path``, which must be a single-channel
      map of exactly the image's size (checked: a clear error names the file otherwise).
    - not labeled for ``seg``: ``gt_seg_map`` filled with ``ignore_index``, so that geometric transforms and
      batching treat every sample alike.
    - withheld tasks (``results['withheld_tasks']``, :class:`MultiTaskDataset` with ``withheld_labels=True``):
      loaded exactly as labeled ones, into the same keys, so that every geometric transform moves them like real
      labels; :class:`PackMultiTaskInputs` moves them out of the training fields.

    Args:
        ignore_index (int): Value of unlabeled pixels. Defaults to 255.
        **kwargs: As :class:`mmdet.datasets.transforms.LoadAnnotations` (``with_bbox``, ``with_label`` and
            ``with_seg`` default to True here).
    """

    def __init__(self, with_bbox=True, with_label=True, with_seg=True, ignore_index=255, **kwargs):
        super().__init__(with_bbox=with_bbox, with_label=with_label, with_seg=with_seg,
                         ignore_index=ignore_index, **kwargs)

    def transform(self, results: dict) -> dict:
        if 'labeled_tasks' not in results:
            raise KeyError(f'LoadMultiTaskAnnotations: sample {results.get("img_path")} has no "labeled_tasks"; '
                           'use it with MultiTaskDataset')
        withheld = tuple(results.get('withheld_tasks', ()))
        both = set(withheld) & set(results['labeled_tasks'])
        if both:
            raise ValueError(f'LoadMultiTaskAnnotations: sample {results.get("img_path")}: task(s) {sorted(both)} '
                             'are both labeled and withheld')
        labeled = tuple(results['labeled_tasks']) + withheld
        if 'det' not in labeled:
            results['instances'] = []
        if self.with_bbox:
            self._load_bboxes(results)
        if self.with_label:
            self._load_labels(results)
        if self.with_seg:
            if 'seg' in labeled:
                self._load_checked_seg_map(results)
            else:
                h, w = results['ori_shape']
                results['gt_seg_map'] = np.full((h, w), self.ignore_index, dtype=np.uint8)
                results['ignore_index'] = self.ignore_index
        return results

    def _load_checked_seg_map(self, results: dict) -> None:
        path = results.get('seg_map_path')
        if path is None:
            raise KeyError(f'image {results.get("img_path")} is labeled for "seg" but has no seg_map_path')
        try:
            self._load_seg_map(results)
        except FileNotFoundError as e:
            raise FileNotFoundError(f'seg map {path} (of image {results.get("img_path")}) not found') from e
        seg = results['gt_seg_map']
        if seg is None or seg.ndim != 2:
            shape = None if seg is None else seg.shape
            raise ValueError(f'seg map {path}: expected a single-channel label image, got shape {shape}')
        if seg.shape != tuple(results['ori_shape']):
            raise ValueError(f'seg map {path}: size {seg.shape[1]}x{seg.shape[0]} (WxH) differs from its image '
                             f'{results.get("img_path")} ({results["ori_shape"][1]}x{results["ori_shape"][0]})')
