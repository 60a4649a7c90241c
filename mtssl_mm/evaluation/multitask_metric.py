"""One evaluator for partially labeled validation sets: each task's metric on its own images."""
import math
from typing import Dict, Optional, Sequence

from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Evaluate each task with its own mmdet/mmseg metric, over the images labeled for it, and combine them.

    Every validation sample is routed to the metric of each task in its ``labeled_tasks``: COCO bbox mAP
    (mmdet ``CocoMetric``) over the det-labeled images, mIoU (mmdet ``SemSegMetric``) over the seg-labeled
    ones. The results are reported as ``'{task}/{key}'`` (e.g. ``det/bbox_mAP``, ``seg/mIoU``) plus
    ``'multitask/gmean'``, the geometric mean of each task's main metric as a fraction in [0, 1] -- the
    model-selection criterion of the paper (``CheckpointHook(save_best='multitask/gmean', rule='greater')``).

    Per-sample results are kept in sample order, so mmengine's collection across ranks (which drops the
    padding of the distributed sampler) stays correct for every task.

    Args:
        task_metrics (dict): Task name -> metric config, e.g. ``dict(det=dict(type='CocoMetric', metric='bbox'),
            seg=dict(type='SemSegMetric', iou_metrics=['mIoU']))``. (Not named ``metrics``: mmengine's Runner
            would take a dict with that key for an ``Evaluator`` config.)
        main_keys (dict): Task name -> ``(key, scale)``: the metric entering the geometric mean and the
            factor that makes it a fraction (``('bbox_mAP', 1.0)``, ``('mIoU', 0.01)`` for a percentage).
        meta_keys (dict, optional): Task name -> ``{sub_key: dataset_key}``: which dataset metainfo keys each
            task's metric sees under which name (the seg metric reads ``classes`` from ``seg_classes``).
        tasks (Sequence[str], optional): Evaluate only these tasks (``tools/test.py --tasks``). Default: all.
        collect_device (str): As :class:`mmengine.evaluator.BaseMetric`.
        prefix (str, optional): Ignored prefix slot of :class:`BaseMetric` (keys carry their task).
    """

    default_prefix = None

    def __init__(self,
                 task_metrics: Dict[str, dict],
                 main_keys: Dict[str, Sequence],
                 meta_keys: Optional[Dict[str, Dict[str, str]]] = None,
                 tasks: Optional[Sequence[str]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        tasks = list(task_metrics) if tasks is None else list(tasks)
        for t in tasks:
            if t not in task_metrics:
                raise KeyError(f'MultiTaskMetric: task {t!r} has no entry in `task_metrics` ({list(task_metrics)})')
            if t not in main_keys:
                raise KeyError(f'MultiTaskMetric: task {t!r} has no entry in `main_keys` ({list(main_keys)})')
        self.task_metrics = {t: METRICS.build(task_metrics[t]) for t in tasks}
        self.main_keys = {t: (main_keys[t][0], float(main_keys[t][1])) for t in tasks}
        self.meta_keys = meta_keys or {}

    @BaseMetric.dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        for task, metric in self.task_metrics.items():
            meta = dict(dataset_meta)
            for sub_key, src_key in self.meta_keys.get(task, {}).items():
                if src_key not in dataset_meta:
                    raise KeyError(f'MultiTaskMetric: dataset metainfo has no {src_key!r} (needed as '
                                   f'{sub_key!r} by the {task!r} metric)')
                meta[sub_key] = dataset_meta[src_key]
            metric.dataset_meta = meta

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'labeled_tasks' not in sample:
                raise KeyError(f'MultiTaskMetric: sample {sample.get("img_path")} has no "labeled_tasks"')
            entry = {}
            for task, metric in self.task_metrics.items():
                if task in sample['labeled_tasks']:
                    before = len(metric.results)
                    metric.process(data_batch, [sample])
                    if len(metric.results) != before + 1:
                        raise RuntimeError(f'{type(metric).__name__} stored {len(metric.results) - before} '
                                           'results for one sample; MultiTaskMetric needs exactly one')
                    entry[task] = metric.results.pop()
            self.results.append(entry)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        out, fractions = {}, []
        for task, metric in self.task_metrics.items():
            task_results = [r[task] for r in results if task in r]
            if not task_results:
                print_log(f'MultiTaskMetric: no validation image is labeled for {task!r}; {task} not evaluated '
                          'and not part of multitask/gmean', 'current', level=30)
                continue
            values = metric.compute_metrics(task_results)
            key, scale = self.main_keys[task]
            if not values:
                # CocoMetric returns nothing when the model made no prediction at all (early training):
                # nothing detected means an AP of 0, not a failed evaluation.
                print_log(f'MultiTaskMetric: {type(metric).__name__} returned no result (no prediction for '
                          f'any {task} image); {task}/{key} = 0', 'current', level=30)
                values = {key: 0.0}
            elif key not in values:
                raise KeyError(f'MultiTaskMetric: {type(metric).__name__} returned no {key!r} '
                               f'(got {sorted(values)})')
            out.update({f'{task}/{k}': v for k, v in values.items()})
            out[f'{task}/num_images'] = len(task_results)
            fractions.append(max(float(values[key]) * scale, 0.0))  # COCO reports -1 when nothing to match
        if fractions:
            out['multitask/gmean'] = math.prod(fractions)**(1.0 / len(fractions))
        return out
