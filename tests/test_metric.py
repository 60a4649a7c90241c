"""MultiTaskMetric on hand-computed cases: routing by labeled_tasks, COCO mAP, mIoU, geometric mean, class-wise."""
import math

import pytest
import torch
from mmdet.registry import METRICS

import mtssl_mm  # noqa: F401
from fixtures import DET_CLASSES, SEG_CLASSES

GT_BOX = [0., 0., 10., 10.]


def metric(tasks=None):
    m = METRICS.build(
        dict(
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
    s = dict(
        img_id=img_id,
        ori_shape=(2, 2) if gt is not None else (20, 20),
        labeled_tasks=tasks,
        instances=[dict(bbox=GT_BOX, bbox_label=2, ignore_flag=0)] if 'det' in tasks else [],
        pred_instances=dict(
            bboxes=torch.tensor(pred_boxes).reshape(n, 4),
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
    m.process(
        {},
        [
            sample(0, ('det', ), [GT_BOX], [0.9]),  # perfect detection
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
        METRICS.build(
            dict(
                type='MultiTaskMetric',
                task_metrics=dict(det=dict(type='CocoMetric')),
                main_keys=dict(det=('bbox_mAP', 1.0)),
                tasks=['depth']))
    m = METRICS.build(
        dict(
            type='MultiTaskMetric',
            task_metrics=dict(seg=dict(type='SemSegMetric')),
            main_keys=dict(seg=('mIoU', 0.01)),
            meta_keys=dict(seg=dict(classes='seg_classes'))))
    with pytest.raises(KeyError, match='seg_classes'):
        m.dataset_meta = dict(classes=DET_CLASSES)


def test_no_prediction_at_all_is_zero_map_not_an_error():
    m = metric(tasks=['det'])
    m.process({}, [sample(0, ('det', ))])
    res = m.evaluate(1)
    assert res['det/bbox_mAP'] == 0.0 and res['multitask/gmean'] == 0.0


# ------------------------------------------------------------------------------------------ class-wise
def det_sample(img_id, gt, preds):
    """``gt``: [(box, label)], ``preds``: [(box, score, label)] -- an evaluator's det-labeled sample."""
    return dict(
        img_id=img_id,
        ori_shape=(20, 20),
        labeled_tasks=('det', ),
        instances=[dict(bbox=b, bbox_label=lab, ignore_flag=0) for b, lab in gt],
        pred_instances=dict(
            bboxes=torch.tensor([p[0] for p in preds]).reshape(len(preds), 4),
            scores=torch.tensor([p[1] for p in preds], dtype=torch.float32),
            labels=torch.tensor([p[2] for p in preds], dtype=torch.long)))


def test_classwise_det_ap_mean_and_population_std():
    # car (2): a perfect box -> AP 1; person (0): IoU 0.62 -> AP 0.3 (true positive at IoU .50, .55, .60 only);
    # rider (1): a confident false positive but no ground truth -> no AP at all (not 0)
    m = metric(tasks=['det'])
    m.process({}, [
        det_sample(0, [(GT_BOX, 2), ([0., 0., 10., 10.], 0)], [(GT_BOX, 0.9, 2), ([0., 0., 10., 6.2], 0.8, 0),
                                                               ([12., 12., 18., 18.], 0.99, 1)])
    ])
    res = m.evaluate(1)
    assert res['det/AP/car'] == pytest.approx(1.0) and res['det/AP/person'] == pytest.approx(0.3, abs=1e-3)
    assert 'det/AP/rider' not in res and 'det/AP/truck' not in res
    assert res['det/AP_num_classes'] == 2
    assert res['det/AP_class_mean'] == pytest.approx(0.65, abs=1e-3) == res['det/bbox_mAP']
    assert res['det/AP_class_std'] == pytest.approx(0.35, abs=1e-3)  # population std: |1 - 0.3| / 2
    assert not any(k.endswith('_precision') for k in res)  # mmdet's own per-class keys are renamed
    assert all(isinstance(v, (int, float)) for k, v in res.items() if '/AP' in k)


def test_classwise_seg_iou_counts_a_predicted_class_without_ground_truth():
    # gt [[road, road], [sidewalk, sidewalk]], pred [[road, building], [sidewalk, sidewalk]]:
    # road 1/2, sidewalk 2/2, building 0/1 (predicted, no ground truth: counts as 0, as in mIoU), others: no value
    m = metric(tasks=['seg'])
    m.process({}, [sample(0, ('seg', ), gt=SEG_GT, pred=[[0, 2], [1, 1]])])
    res = m.evaluate(1)
    assert res['seg/IoU/road'] == pytest.approx(0.5) and res['seg/IoU/sidewalk'] == pytest.approx(1.0)
    assert res['seg/IoU/building'] == 0.0
    assert 'seg/IoU/traffic_light' not in res and 'seg/IoU/sky' not in res
    assert res['seg/IoU_num_classes'] == 3
    assert res['seg/IoU_class_mean'] == pytest.approx(0.5) == pytest.approx(float(res['seg/mIoU']) / 100)
    assert res['seg/IoU_class_std'] == pytest.approx(math.sqrt(0.5 / 3))


def test_classwise_off_keeps_only_the_summary():
    m = METRICS.build(
        dict(
            type='MultiTaskMetric',
            classwise=False,
            task_metrics=dict(det=dict(type='CocoMetric', metric='bbox'), seg=dict(type='SemSegMetric')),
            main_keys=dict(det=('bbox_mAP', 1.0), seg=('mIoU', 0.01)),
            meta_keys=dict(seg=dict(classes='seg_classes'))))
    m.dataset_meta = dict(classes=DET_CLASSES, seg_classes=SEG_CLASSES)
    m.process({}, [sample(0, ('det', ), [GT_BOX], [0.9]), sample(1, ('seg', ), gt=SEG_GT, pred=SEG_PRED)])
    res = m.evaluate(2)
    assert not any('/AP' in k or '/IoU' in k for k in res) and 'det/bbox_mAP' in res and 'seg/mIoU' in res


def test_class_std_is_the_papers():
    """Population std (ddof=0) across classes reproduces Table 6 (supervised: 0.367 ± 0.114) and Table 5."""
    from mtssl_mm.evaluation.classwise import class_mean_std
    mean, std, n = class_mean_std([0.360, 0.400, 0.525, 0.325, 0.558, 0.241, 0.234, 0.289])
    assert (round(mean, 3), round(std, 3), n) == (0.367, 0.114, 8)
    t5 = [
        0.976, 0.814, 0.919, 0.474, 0.592, 0.618, 0.656, 0.762, 0.919, 0.600, 0.943, 0.821, 0.617, 0.949, 0.801, 0.886,
        0.760, 0.657, 0.762
    ]
    assert [round(v, 3) for v in class_mean_std(t5)[:2]] == [0.765, 0.143]
    assert class_mean_std([float('nan'), 0.5, 1.0])[2] == 2  # NaN (no ground truth) is left out, not a 0


def test_seg_aacc_is_the_pixel_accuracy():
    """A prediction right on 90 % of its pixels, all of one class: aAcc 90 (mmdet 3.3's SemSegMetric reports 50,
    its mAcc, the mean of the per-class accuracies 100 % and 0 %). The configs' default seg metric."""
    from mtssl_mm.tasks.task_data import task_data
    seg_metric = task_data('seg', 'test').metric_cfg()
    assert seg_metric['type'] == 'PixelAccSemSegMetric'
    m = METRICS.build(
        dict(
            type='MultiTaskMetric',
            task_metrics=dict(seg=seg_metric),
            main_keys=dict(seg=('mIoU', 0.01)),
            meta_keys=dict(seg=dict(classes='seg_classes'))))
    m.dataset_meta = dict(classes=DET_CLASSES, seg_classes=SEG_CLASSES)
    gt = [[0] * 9 + [1]]  # 9 road pixels, 1 sidewalk pixel
    pred = [[0] * 10]  # all road
    m.process({}, [
        dict(
            img_id=0,
            ori_shape=(1, 10),
            labeled_tasks=('seg', ),
            gt_sem_seg=dict(sem_seg=torch.tensor([gt])),
            pred_sem_seg=dict(sem_seg=torch.tensor([pred])))
    ])
    res = m.evaluate(1)
    assert res['seg/aAcc'] == pytest.approx(90.0)
    assert res['seg/mAcc'] == pytest.approx(50.0)  # road 100 %, sidewalk 0 %
    assert res['seg/mIoU'] == pytest.approx(45.0)  # road 9/10, sidewalk 0/1
