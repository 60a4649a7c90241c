"""Detection's data side: ``instances`` of an annotation entry, mmdet's box loading and packing, COCO mAP."""
import numpy as np
import torch
from mmengine.structures import InstanceData

from .task_data import TaskData, register_task_data


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
    - metric: COCO bbox mAP (mmdet ``CocoMetric``), ``bbox_mAP`` in ``multitask/gmean``.
    """

    name = 'det'
    required_meta = ('classes', )
    withheld_field = 'withheld_instances'
    metric = dict(type='CocoMetric', metric='bbox')
    main_key = ('bbox_mAP', 1.0)
    meta_keys = {}

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
            instances.append(dict(bbox=[x1, y1, x2, y2], bbox_label=classes.index(label),
                                  ignore_flag=int(inst.get('ignore_flag', 0))))
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
        withheld = InstanceData(bboxes=tensor[torch.from_numpy(keep)].float().reshape(-1, 4),
                                labels=torch.as_tensor(np.asarray(labels)[keep], dtype=torch.long))
        none = np.zeros(len(keep), dtype=bool)  # what an unlabeled sample carries: N = 0, same types
        results['gt_bboxes'], results['gt_bboxes_labels'] = boxes[none], labels[none]
        results['gt_ignore_flags'] = ignore[none]
        if 'instances' in results:  # original-resolution boxes, for meta_keys that carry them
            results['instances'] = []
        return {self.withheld_field: withheld}
