"""MultiTaskMetric's class-wise report comes from each task's data side (``TaskData.classwise_report``): detection
and segmentation implement it, a task without it is skipped with an info line that names it."""
import pytest
import torch
from mmdet.registry import METRICS

import mtssl_mm  # noqa: F401
from mtssl_mm.evaluation import multitask_metric
from mtssl_mm.evaluation.classwise import classwise_metrics
from mtssl_mm.tasks import TASK_DATA
from fixtures import DET_CLASSES, SEG_CLASSES

ATTR_CLASSES = dict(weather=['clear', 'rainy'])


def logged(monkeypatch):
    """The messages MultiTaskMetric logs."""
    lines = []
    monkeypatch.setattr(multitask_metric, 'print_log', lambda msg, *args, **kwargs: lines.append(str(msg)))
    return lines


def attr_sample(i, gt, pred, tasks=('attr', )):
    return dict(
        img_id=i,
        ori_shape=(20, 20),
        labeled_tasks=tasks,
        instances=[],
        pred_instances=dict(bboxes=torch.zeros(0, 4), scores=torch.zeros(0), labels=torch.zeros(0).long()),
        gt_attributes=torch.tensor([gt]),
        pred_attributes=torch.tensor([pred]))


def test_a_task_without_the_hook_is_skipped_with_one_line_that_names_it(monkeypatch):
    # an attribute-only dataset has no 'classes': the report must not reach for another task's metainfo
    lines = logged(monkeypatch)
    m = METRICS.build(dict(type='MultiTaskMetric'))  # classwise=True, the default
    m.dataset_meta = dict(attr_classes=ATTR_CLASSES, tasks=('attr', ))
    m.process({}, [attr_sample(0, 0, 0), attr_sample(1, 1, 0)])
    res = m.evaluate(2)
    assert res['attr/weather_accuracy'] == pytest.approx(0.5)
    assert not any('/AP' in k or '/IoU' in k for k in res)
    skipped = [line for line in lines if 'class-wise' in line]
    assert skipped == ['MultiTaskMetric: no class-wise report for task attr (AttributesData has no classwise_report)']


def test_det_and_seg_reports_come_from_their_data_side_the_others_are_named(monkeypatch):
    lines = logged(monkeypatch)
    m = METRICS.build(dict(type='MultiTaskMetric', tasks=['det', 'attr']))
    m.dataset_meta = dict(
        classes=DET_CLASSES, seg_classes=SEG_CLASSES, attr_classes=ATTR_CLASSES, tasks=('det', 'seg', 'attr'))
    assert m.task_metrics['det'].classwise is True  # DetectionData.prepare_metric
    box = [0., 0., 10., 10.]
    det = dict(
        img_id=0,
        ori_shape=(20, 20),
        labeled_tasks=('det', 'attr'),
        instances=[dict(bbox=box, bbox_label=2, ignore_flag=0)],
        pred_instances=dict(bboxes=torch.tensor([box]), scores=torch.tensor([0.9]), labels=torch.tensor([2])),
        gt_attributes=torch.tensor([0]),
        pred_attributes=torch.tensor([0]))
    m.process({}, [det])
    res = m.evaluate(1)
    assert res['det/AP/car'] == pytest.approx(1.0) and res['det/AP_num_classes'] == 1
    assert not any(k.startswith('attr/') and '/AP' in k for k in res)
    assert any(line.startswith('\ndet: class-wise COCO AP@[.5:.95] on the 1 images labeled for det') for line in lines)
    assert 'MultiTaskMetric: no class-wise report for task attr (AttributesData has no classwise_report)' in lines
    # a det task evaluated by a metric its data side does not know: named as such, nothing else reported
    assert TASK_DATA['det'].classwise_report(METRICS.build(dict(type='SemSegMetric')), [], {}) is None
    assert TASK_DATA['seg'].classwise_report(m.task_metrics['det'], [], {}) is None


def test_an_unregistered_task_is_named_too(monkeypatch):
    lines = logged(monkeypatch)
    m = METRICS.build(
        dict(
            type='MultiTaskMetric',
            task_metrics=dict(depth=dict(type='AttributeMetric')),
            main_keys=dict(depth=('macro_f1', 1.0)),
            meta_keys=dict(depth={})))
    m.dataset_meta = dict(attr_classes=ATTR_CLASSES)
    m.process({}, [attr_sample(0, 0, 0, tasks=('depth', ))])
    assert m.evaluate(1)['depth/macro_f1'] == 1.0
    assert 'MultiTaskMetric: no class-wise report for task depth (not a registered task)' in lines


def test_classwise_metrics_keys_and_table_from_a_report():
    report = dict(
        name='IoU',
        classes=['road', 'traffic light', 'sky'],
        values={
            'road': 0.5,
            'traffic light': 1.0
        },
        gt_counts=[3, 1, 0],
        title='t',
        share_name='% pixels',
        notes={'traffic light': 'n'})
    out, table = classwise_metrics('seg', report)
    assert out == {
        'seg/IoU/road': 0.5,
        'seg/IoU/traffic_light': 1.0,
        'seg/IoU_class_mean': 0.75,
        'seg/IoU_class_std': 0.25,
        'seg/IoU_num_classes': 2
    }
    rows = [[c.strip() for c in line.strip('|').split('|')] for line in table.splitlines()[3:]]
    assert table.splitlines()[0] == 't'
    assert rows == [['road', '0.500', '75.00'], ['traffic light', '1.000 (n)', '25.00'],
                    ['sky', 'n/a (no ground truth)', '0.00'], ['mean ± std (2 classes)', '0.750 ± 0.250', '']]
    with pytest.raises(KeyError, match="task 'seg'.*'gt_counts'"):
        classwise_metrics('seg', {k: v for k, v in report.items() if k != 'gt_counts'})
