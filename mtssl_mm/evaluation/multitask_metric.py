"""One evaluator for partially labeled validation sets: each task's metric on its own images."""
import math
from typing import Dict, Optional, Sequence

from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.utils import is_method_overridden

from ..tasks.task_data import TASK_DATA, TaskData, task_data
from .classwise import classwise_metrics

#: per-sample result key of a task's supervised loss (``task_losses`` of the data sample, ``BaseTask.record_losses``)
LOSS_KEY = 'val_losses/'


def val_losses(entries: Sequence[dict], task: str) -> Dict[str, float]:
    """``'{task}/val_{loss}'``: every loss's sum over the samples divided by the summed counts (the training
    normaliser of the task over the whole set); empty when no sample carries losses."""
    if not entries:
        return {}
    count = max(sum(e['count'] for e in entries), 1.0)
    keys = [k for k in entries[0] if k != 'count']
    return {f'{task}/val_{k}': sum(e[k] for e in entries) / count for k in keys}


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """Evaluate each task with its own metric, over the images labeled for it, and combine them.

    The tasks are ``tasks``, else those of ``task_metrics``, else the dataset's (``dataset_meta['tasks']``, set by
    :class:`~mtssl_mm.datasets.MultiTaskDataset`); each task's metric, main key and metainfo keys default to its
    data side's (:data:`~mtssl_mm.tasks.TASK_DATA`), so ``dict(type='MultiTaskMetric')`` evaluates whatever tasks
    the dataset serves. Every validation sample is routed to the metric of each task in its ``labeled_tasks``:
    COCO bbox mAP (mmdet ``CocoMetric``) over the det-labeled images, mIoU (mmdet ``SemSegMetric``) over the
    seg-labeled ones, and so on. The results are reported as ``'{task}/{key}'`` (e.g. ``det/bbox_mAP``,
    ``seg/mIoU``) plus ``'multitask/gmean'``, the geometric mean of each task's main metric as a fraction in
    [0, 1] -- the model-selection criterion of the paper
    (``CheckpointHook(save_best='multitask/gmean', rule='greater')``).

    Class-wise results (``classwise=True``, the default; the paper's Tables 5, 6, 8, 9), for each task whose data
    side has a class-wise report (:meth:`TaskData.classwise_report <mtssl_mm.tasks.TaskData.classwise_report>`;
    a task without one gets an info line): ``'{task}/AP/{class}'`` for detection (COCO AP@[.5:.95] of the class,
    a fraction, from ``CocoMetric(classwise=True)``) or ``'{task}/IoU/{class}'`` for segmentation (a fraction,
    not %), then ``'{task}/AP_class_mean'``, ``'{task}/AP_class_std'`` (population std across classes) and
    ``'{task}/AP_num_classes'`` (the classes that entered them), ``IoU_*`` likewise; whitespace in class names
    becomes ``_``. Classes without ground truth are left out, never set to 0 (see
    :mod:`mtssl_mm.evaluation.classwise`). Each task's table (class | value | share of the ground truth, then
    mean ± std) goes to the log. All values are Python floats, so mmengine's ``LoggerHook`` writes them to
    ``vis_data/scalars.json`` (validation) and the test run's JSON file.

    Validation losses (Table 7): where the model wrote each task's supervised loss into the samples labeled for it
    (``MultiTaskModel(val_losses=True)``, the default, from the prediction's forward pass), the report holds
    ``'{task}/val_loss_*'`` (``det/val_loss_cls``, ``det/val_loss_bbox``, ``seg/val_loss_ce``, ...): each loss
    summed over the task's images and divided by the summed normalisers, the training normaliser over the whole
    set (per image for detection, Eq. 3; labeled pixels for segmentation), unweighted.

    Per-sample results are kept in sample order, so mmengine's collection across ranks (which drops the
    padding of the distributed sampler) stays correct for every task, the losses included.

    Args:
        task_metrics (dict, optional): Task name -> metric config, replacing the task's default, e.g.
            ``dict(seg=dict(type='SemSegMetric', iou_metrics=['mIoU', 'mDice']))``. (Not named ``metrics``:
            mmengine's Runner would take a dict with that key for an ``Evaluator`` config.)
        main_keys (dict, optional): Task name -> ``(key, scale)``: the metric entering the geometric mean and the
            factor that makes it a fraction (``('bbox_mAP', 1.0)``, ``('mIoU', 0.01)`` for a percentage).
        meta_keys (dict, optional): Task name -> ``{sub_key: dataset_key}``: which dataset metainfo keys each
            task's metric sees under which name (the seg metric reads ``classes`` from ``seg_classes``).
        tasks (Sequence[str], optional): Evaluate only these tasks (``tools/test.py --tasks``). Default: those of
            ``task_metrics`` when given, else the dataset's.
        classwise (bool): Report and log per-class results. Defaults to True.
        collect_device (str): As :class:`mmengine.evaluator.BaseMetric`.
        prefix (str, optional): Ignored prefix slot of :class:`BaseMetric` (keys carry their task).
    """

    default_prefix = None

    def __init__(self,
                 task_metrics: Optional[Dict[str, dict]] = None,
                 main_keys: Optional[Dict[str, Sequence]] = None,
                 meta_keys: Optional[Dict[str, Dict[str, str]]] = None,
                 tasks: Optional[Sequence[str]] = None,
                 classwise: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self._metric_cfgs = dict(task_metrics or {})
        self._main_key_cfgs = dict(main_keys or {})
        self._meta_key_cfgs = dict(meta_keys or {})
        self.classwise = bool(classwise)
        self.task_metrics: Dict[str, BaseMetric] = {}
        if tasks is None and task_metrics:
            tasks = list(task_metrics)
        self.tasks = None if tasks is None else list(tasks)
        if self.tasks is not None:
            self._build(self.tasks)

    def _build(self, tasks: Sequence[str]) -> None:
        """Build the metric of each task: the configured one, else the task's default (``TaskData.metric``)."""
        self.task_metrics, self.main_keys, self.meta_keys = {}, {}, {}
        for t in tasks:
            spec = None
            if t not in self._metric_cfgs or t not in self._main_key_cfgs or t not in self._meta_key_cfgs:
                try:
                    spec = task_data(t, 'MultiTaskMetric')
                except KeyError:
                    missing = 'task_metrics' if t not in self._metric_cfgs else 'main_keys'
                    raise KeyError(f'MultiTaskMetric: task {t!r} has no entry in `{missing}` and is not a registered '
                                   'task with a default metric') from None
            self.task_metrics[t] = METRICS.build(self._metric_cfgs.get(t) or spec.metric_cfg())
            key, scale = self._main_key_cfgs[t] if t in self._main_key_cfgs else spec.main_key
            self.main_keys[t] = (key, float(scale))
            self.meta_keys[t] = dict(self._meta_key_cfgs[t] if t in self._meta_key_cfgs else spec.meta_keys)
        for t, metric in self.task_metrics.items():
            if t in TASK_DATA:  # e.g. CocoMetric(classwise=True): mmdet's per-class AP, for the class-wise report
                TASK_DATA[t].prepare_metric(metric, self.classwise)

    @BaseMetric.dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        if self.tasks is None:
            if 'tasks' not in dataset_meta:
                raise KeyError('MultiTaskMetric: no `tasks` given and the dataset metainfo has no "tasks" (set by '
                               'MultiTaskDataset); name the tasks to evaluate')
            self._build(list(dataset_meta['tasks']))
        elif 'tasks' in dataset_meta:
            extra = [t for t in self.task_metrics if t not in dataset_meta['tasks']]
            if extra:
                raise ValueError(f'MultiTaskMetric: task(s) {extra} are evaluated but the dataset does not serve them '
                                 f'(its tasks: {list(dataset_meta["tasks"])}); no image would be labeled for them')
        for task, metric in self.task_metrics.items():
            meta = dict(dataset_meta)
            for sub_key, src_key in self.meta_keys.get(task, {}).items():
                if src_key not in dataset_meta:
                    raise KeyError(f'MultiTaskMetric: dataset metainfo has no {src_key!r} (needed as '
                                   f'{sub_key!r} by the {task!r} metric)')
                meta[sub_key] = dataset_meta[src_key]
            metric.dataset_meta = meta

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        if self.tasks is None and not self.task_metrics:
            raise RuntimeError('MultiTaskMetric: the tasks to evaluate come from the dataset metainfo, which was '
                               'never set (set `dataset_meta` or give `tasks`)')
        for sample in data_samples:
            if 'labeled_tasks' not in sample:
                raise KeyError(f'MultiTaskMetric: sample {sample.get("img_path")} has no "labeled_tasks"')
            entry = {}
            losses = sample.get('task_losses') or {}
            for task, metric in self.task_metrics.items():
                if task in sample['labeled_tasks'] and task in losses:
                    entry[LOSS_KEY + task] = losses[task]
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
                print_log(
                    f'MultiTaskMetric: no validation image is labeled for {task!r}; {task} not evaluated '
                    'and not part of multitask/gmean',
                    'current',
                    level=30)
                continue
            values = metric.compute_metrics(task_results)
            per_class = self._classwise(task, metric, task_results, values) if self.classwise else {}
            key, scale = self.main_keys[task]
            if not values:
                # CocoMetric returns nothing when the model made no prediction at all (early training):
                # nothing detected means an AP of 0, not a failed evaluation.
                print_log(
                    f'MultiTaskMetric: {type(metric).__name__} returned no result (no prediction for '
                    f'any {task} image); {task}/{key} = 0',
                    'current',
                    level=30)
                values = {key: 0.0}
            elif key not in values:
                raise KeyError(f'MultiTaskMetric: {type(metric).__name__} returned no {key!r} '
                               f'(got {sorted(values)})')
            out.update({f'{task}/{k}': v for k, v in values.items()})
            out.update(val_losses([r[LOSS_KEY + task] for r in results if LOSS_KEY + task in r], task))
            out.update(per_class)
            out[f'{task}/num_images'] = len(task_results)
            fractions.append(max(float(values[key]) * scale, 0.0))  # COCO reports -1 when nothing to match
        if fractions:
            out['multitask/gmean'] = math.prod(fractions)**(1.0 / len(fractions))
        return out

    def _classwise(self, task: str, metric: BaseMetric, task_results: list, values: dict) -> Dict[str, float]:
        """Per-class values of one task as ``'{task}/{AP|IoU}/{class}'`` + mean, std, count; the table is logged.

        The task's data side computes the values (:meth:`~mtssl_mm.tasks.TaskData.classwise_report`, which may
        take its entries out of ``values``, as detection does with mmdet's ``'{class}_precision'``); a task
        without one (not registered, no ``classwise_report``, or it returns None for this metric) gets an info
        line and no key.
        """
        spec = TASK_DATA.get(task)
        report = spec.classwise_report(metric, task_results, values) if spec is not None else None
        if report is None:
            if spec is None:
                why = 'not a registered task'
            elif not is_method_overridden('classwise_report', TaskData, type(spec)):
                why = f'{type(spec).__name__} has no classwise_report'
            else:
                why = f'{type(spec).__name__}.classwise_report has none for {type(metric).__name__}'
            print_log(f'MultiTaskMetric: no class-wise report for task {task} ({why})', 'current')
            return {}
        if report.get('warning'):
            print_log(f'MultiTaskMetric: {report["warning"]}', 'current', level=30)
        out, table = classwise_metrics(task, report)
        print_log('\n' + table, 'current')
        return out
