"""Class-wise results of each task, as the paper's Tables 5, 6, 8 and 9: one value per class, then mean ± std.

The generic side of :class:`~mtssl_mm.evaluation.MultiTaskMetric`'s class-wise report: a task's data side computes
its per-class values (:meth:`~mtssl_mm.tasks.TaskData.classwise_report`: COCO AP per class in
:class:`~mtssl_mm.tasks.DetectionData`, IoU per class in :class:`~mtssl_mm.tasks.SegmentationData`), this module
turns them into the logged keys (:func:`classwise_metrics`) and the table (:func:`format_class_table`).

Values are fractions in [0, 1] (the paper's tables), also for segmentation, whose ``seg/mIoU`` is in %. The
standard deviation is the *population* one (``ddof=0``) across the classes that have a value: it reproduces the
paper's tables (Table 5 supervised: 0.765 ± 0.143; Table 6: 0.367 ± 0.114). A class without a value (no ground
truth: see each task's ``classwise_report``) has no key and stays out of the mean and std, never counted as 0.
"""
import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


def format_class_table(title: str,
                       value_name: str,
                       class_names: Sequence[str],
                       values: Dict[str, float],
                       shares: Optional[np.ndarray] = None,
                       share_name: str = '% gt',
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


#: what a task's :meth:`~mtssl_mm.tasks.TaskData.classwise_report` returns (``notes`` and ``warning`` may be absent)
REPORT_KEYS = ('name', 'classes', 'values', 'gt_counts', 'title', 'share_name')


def classwise_metrics(task: str, report: Dict[str, Any]) -> Tuple[Dict[str, float], str]:
    """The logged keys and the table of one task's class-wise report.

    Args:
        task: The task's name (the keys' prefix).
        report: What the task's ``classwise_report`` returned: ``name`` (the value's name, ``'AP'``, ``'IoU'``),
            ``classes`` (all class names, in label order), ``values`` (class name -> fraction, only the classes that
            have one), ``gt_counts`` (``(K,)`` ground truth per class: boxes, pixels), ``title`` (the table's first
            line), ``share_name`` (the column title of the ground-truth shares, ``'% objects'``), optionally
            ``notes`` (class name -> a note beside its value).

    Returns:
        tuple: ``(metrics, table)``: ``'{task}/{name}/{class}'`` (whitespace in class names becomes ``_``) for each
        class with a value, ``'{task}/{name}_class_mean'`` and ``'{task}/{name}_class_std'`` (population std; only
        when some class has a value) and ``'{task}/{name}_num_classes'`` (the classes that entered them), all
        Python numbers; the markdown table of :func:`format_class_table`.

    Raises:
        KeyError: ``report`` lacks one of :data:`REPORT_KEYS` (names the task).
    """
    missing = [k for k in REPORT_KEYS if k not in report]
    if missing:
        raise KeyError(f'the class-wise report of task {task!r} has no {missing} (a TaskData.classwise_report returns '
                       f'a dict with {list(REPORT_KEYS)})')
    name, per_class = report['name'], report['values']
    mean, std, n = class_mean_std(list(per_class.values()))
    out = {f'{task}/{name}/{metric_key(c)}': float(v) for c, v in per_class.items()}
    if n:
        out.update({f'{task}/{name}_class_mean': mean, f'{task}/{name}_class_std': std})
    out[f'{task}/{name}_num_classes'] = n
    table = format_class_table(report['title'], name, report['classes'], per_class, report['gt_counts'],
                               report['share_name'], report.get('notes'))
    return out, table
