"""Pack a partially labeled sample: mmdet's packing plus the tasks it is labeled for."""
import numpy as np
import torch
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmengine.structures import InstanceData, PixelData

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                     'flip_direction', 'labeled_tasks')


@TRANSFORMS.register_module()
class PackMultiTaskInputs(PackDetInputs):
    """:class:`mmdet.datasets.transforms.PackDetInputs` that always carries ``labeled_tasks`` in the metainfo.

    Outputs ``inputs`` (3, H, W) uint8 and a ``DetDataSample`` with ``gt_instances`` (non-ignored boxes),
    ``ignored_instances`` (crowd / ignore boxes), ``gt_sem_seg.sem_seg`` (1, H, W) and the metainfo
    ``labeled_tasks`` (tuple of task names). Add ``'instances'`` to ``meta_keys`` in validation pipelines:
    COCO evaluation reads the original-resolution boxes from there.

    Withheld labels (``results['withheld_tasks']``, see ``MultiTaskDataset(withheld_labels=True)``) arrive in the
    training keys, moved by the pipeline like real labels. They are *moved* out of them here: a withheld ``det``
    gives ``withheld_instances`` (InstanceData: ``bboxes`` (N, 4) float32 tensor in input pixels, ``labels`` (N,)
    int64; crowd / ignore boxes are left out) and empty ``gt_instances`` / ``ignored_instances``; a withheld
    ``seg`` gives ``withheld_sem_seg.sem_seg`` (1, H, W) uint8 and an all-``ignore_index`` ``gt_sem_seg``. The
    training fields are then exactly those of the same sample without withheld labels; the metainfo gains
    ``withheld_tasks``.
    """

    def __init__(self, meta_keys=DEFAULT_META_KEYS):
        meta_keys = tuple(meta_keys)
        for key in ('labeled_tasks', 'withheld_tasks'):
            if key not in meta_keys:
                meta_keys += (key, )
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        if 'labeled_tasks' not in results:
            raise KeyError(f'PackMultiTaskInputs: sample {results.get("img_path")} has no "labeled_tasks"')
        results['labeled_tasks'] = tuple(results['labeled_tasks'])
        # full-resolution evaluation pipelines have no Resize; predictions are then rescaled by 1
        results.setdefault('scale_factor', (1.0, 1.0))
        withheld = {}
        if 'withheld_tasks' in results:
            results['withheld_tasks'] = tuple(results['withheld_tasks'])
            withheld = self._take_withheld(results)
        packed = super().transform(results)
        for key, value in withheld.items():
            setattr(packed['data_samples'], key, value)
        return packed

    @staticmethod
    def _take_withheld(results: dict) -> dict:
        """Move the withheld tasks' labels out of ``results``, leaving what an unlabeled sample has there."""
        out = {}
        name = results.get('img_path')
        if 'det' in results['withheld_tasks']:
            for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags'):
                if key not in results:
                    raise KeyError(f'PackMultiTaskInputs: sample {name} withholds "det" but has no "{key}"; '
                                   'load it with LoadMultiTaskAnnotations')
            boxes, labels, ignore = results['gt_bboxes'], results['gt_bboxes_labels'], results['gt_ignore_flags']
            keep = np.asarray(ignore) == 0
            tensor = boxes.tensor if hasattr(boxes, 'tensor') else torch.as_tensor(np.asarray(boxes))
            out['withheld_instances'] = InstanceData(
                bboxes=tensor[torch.from_numpy(keep)].float().reshape(-1, 4),
                labels=torch.as_tensor(np.asarray(labels)[keep], dtype=torch.long))
            none = np.zeros(len(keep), dtype=bool)  # what an unlabeled sample carries: N = 0, same types
            results['gt_bboxes'], results['gt_bboxes_labels'] = boxes[none], labels[none]
            results['gt_ignore_flags'] = ignore[none]
            if 'instances' in results:  # original-resolution boxes, for meta_keys that carry them
                results['instances'] = []
        if 'seg' in results['withheld_tasks']:
            if results.get('gt_seg_map') is None:
                raise KeyError(f'PackMultiTaskInputs: sample {name} withholds "seg" but has no "gt_seg_map"; '
                               'load it with LoadMultiTaskAnnotations')
            seg = results['gt_seg_map']
            ignore_index = results.get('ignore_index', 255)
            data = PixelData(sem_seg=torch.from_numpy(seg[None].copy()))
            data.set_metainfo(dict(ignore_index=ignore_index))
            out['withheld_sem_seg'] = data
            results['gt_seg_map'] = np.full_like(seg, ignore_index)
        return out
