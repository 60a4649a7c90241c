"""MultiTaskMetric on hand-computed cases: routing by labeled_tasks, COCO mAP, mIoU, geometric mean."""
import math

import pytest
import torch

import mtssl_mm  # noqa: F401
from fixtures import DET_CLASSES, SEG_CLASSES
from mmdet.registry import METRICS

GT_BOX = [0., 0., 10., 10.]


def metric(tasks=None):
    m = METRICS.build(dict(
        type='MultiTaskMetric',
        task_metrics=dict(det=dict(type='CocoMetric', metric='bbox'), seg=dict(type='SemSegMetric')),
        main_keys=dict(det=('bbox_mAP', 1.0), seg=('mIoU', 0.01)),
        meta_keys=dict(seg=dict(classes='seg_classes')),
        tasks=tasks))
    m.dataset_meta = dict(classes=DET_CLASSES, seg_classes=SEG_CLASSES)
    return m


def sample(img_id, tasks, pred_boxes=(), scores=(), gt=None, pred=None):
    """A predicted data sample as the evaluator receives it (a dict)."""
    n = len(pred_boxes)
    s = dict(img_id=img_id, ori_shape=(2, 2) if gt is not None else (20, 20), labeled_tasks=tasks,
             instances=[dict(bbox=GT_BOX, bbox_label=2, ignore_flag=0)] if 'det' in tasks else [],
             pred_instances=dict(bboxes=torch.tensor(pred_boxes).reshape(n, 4),
                                 scores=torch.tensor(scores, dtype=torch.float32),
                                 labels=torch.full((n, ), 2, dtype=torch.long)))
    if gt is not None:
        s['gt_sem_seg'] = dict(sem_seg=torch.tensor([gt]))
        s['pred_sem_seg'] = dict(sem_seg=torch.tensor([pred]))
    return s


SEG_GT = [[0, 0], [1, 1]]
SEG_PRED = [[0, 1], [1, 1]]  # IoU(road) = 1/2, IoU(sidewalk) = 2/3 -> mIoU = 58.33 %


def test_joint_metric_routes_each_sample_to_its_tasks():
    m = metric()
    m.process({}, [
        sample(0, ('det', ), [GT_BOX], [0.9]),                       # perfect detection
        # seg-only image: its confident false detection must not reach the det metric
        sample(1, ('seg', ), [[5., 5., 15., 15.]], [0.99], gt=SEG_GT, pred=SEG_PRED),
    ])
    res = m.evaluate(2)
    assert res['det/bbox_mAP'] == pytest.approx(1.0)
    assert res['seg/mIoU'] == pytest.approx(58.33, abs=0.01)
    assert res['det/num_images'] == 1 and res['seg/num_images'] == 1
    assert res['multitask/gmean'] == pytest.approx(math.sqrt(1.0 * 0.5833), abs=1e-4)


def test_det_map_over_iou_thresholds():
    # IoU(pred, gt) = 62/100: a true positive at IoU 0.50, 0.55, 0.60 only -> mAP = 3/10
    m = metric(tasks=['det'])
    m.process({}, [sample(0, ('det', 'seg'), [[0., 0., 10., 6.2]], [0.8])])
    res = m.evaluate(1)
    assert res['det/bbox_mAP'] == pytest.approx(0.3, abs=1e-3)
    assert res['multitask/gmean'] == pytest.approx(0.3, abs=1e-3)  # one task evaluated
    assert not any(k.startswith('seg/') for k in res)


def test_a_false_positive_ranked_first_halves_ap():
    m = metric(tasks=['det'])
    m.process({}, [sample(0, ('det', ), [GT_BOX, [10., 10., 20., 20.]], [0.5, 0.9])])
    assert m.evaluate(1)['det/bbox_mAP'] == pytest.approx(0.5, abs=0.01)


def test_missing_metric_entry_and_missing_meta_are_named():
    with pytest.raises(KeyError, match="'depth'"):
        METRICS.build(dict(type='MultiTaskMetric', task_metrics=dict(det=dict(type='CocoMetric')),
                           main_keys=dict(det=('bbox_mAP', 1.0)), tasks=['depth']))
    m = METRICS.build(dict(type='MultiTaskMetric', task_metrics=dict(seg=dict(type='SemSegMetric')),
                           main_keys=dict(seg=('mIoU', 0.01)), meta_keys=dict(seg=dict(classes='seg_classes'))))
    with pytest.raises(KeyError, match='seg_classes'):
        m.dataset_meta = dict(classes=DET_CLASSES)


def test_no_prediction_at_all_is_zero_map_not_an_error():
    m = metric(tasks=['det'])
    m.process({}, [sample(0, ('det', ))])
    res = m.evaluate(1)
    assert res['det/bbox_mAP'] == 0.0 and res['multitask/gmean'] == 0.0
