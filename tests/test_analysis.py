"""Confusion matrices and per-image scores (mtssl_mm/evaluation/analysis.py, tools/analysis/) on hand-made cases:
only the images labeled for a task count."""
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mtssl_mm.evaluation import analysis as A
from fixtures import REPO, cfg_options

CAR, PERSON, RIDER, BG = 2, 0, 1, 3  # detection labels of a 3-class problem, background = 3


def info(path, tasks, instances=(), seg_map_path=None):
    return dict(img_path=path, labeled_tasks=tuple(tasks), instances=list(instances), seg_map_path=seg_map_path)


def box(b, label, ignore=0):
    return dict(bbox=list(b), bbox_label=label, ignore_flag=ignore)


def pred(path, dets=(), seg=None):
    """``dets``: [(box, score, label)]."""
    p = dict(
        img_path=path,
        pred_instances=dict(
            bboxes=torch.tensor([d[0] for d in dets], dtype=torch.float32).reshape(-1, 4),
            scores=torch.tensor([d[1] for d in dets], dtype=torch.float32),
            labels=torch.tensor([d[2] for d in dets], dtype=torch.long)))
    if seg is not None:
        p['pred_sem_seg'] = dict(sem_seg=torch.tensor([seg]))
    return p


def test_det_confusion_matrix_counts_only_det_labeled_images():
    pairs = [
        # car found; person taken for a rider (and so missed); a car where there is nothing; a low-score person
        (info('a', ['det'], [box([0, 0, 10, 10], CAR), box([20, 20, 30, 30], PERSON)]),
         pred('a', [([0, 0, 10, 10], .9, CAR), ([20, 20, 30, 30], .8, RIDER), ([50, 50, 60, 60], .7, CAR),
                    ([20, 20, 30, 30], .1, PERSON)])),
        # not labeled for det: its confident box is no false positive
        (info('b', ['seg']), pred('b', [([0, 0, 10, 10], .99, CAR)])),
        # a detection on a crowd region only: counted nowhere
        (info('c', ['det'], [box([70, 70, 90, 90], CAR, ignore=1)]), pred('c', [([70, 70, 90, 90], .9, CAR)])),
    ]
    cm = A.det_confusion_matrix(pairs, 3, score_thr=0.3, tp_iou_thr=0.5)
    expected = np.zeros((4, 4))
    expected[CAR, CAR] = 1  # true positive
    expected[PERSON, RIDER] = 1  # confusion
    expected[PERSON, BG] = 1  # the person has no detection of its class: missed
    expected[BG, CAR] = 1  # false positive on background
    np.testing.assert_array_equal(cm, expected)
    # with the seg-only image counted as det-labeled (the bug of mmdet's tool on partial labels), one more FP
    pairs[1] = (info('b', ['det', 'seg']), pairs[1][1])
    assert A.det_confusion_matrix(pairs, 3, score_thr=0.3)[BG, CAR] == 2


def write_map(tmp_path, name, arr):
    path = str(tmp_path / f'{name}.png')
    cv2.imwrite(path, np.asarray(arr, dtype=np.uint8))
    return path


def test_seg_confusion_matrix_and_image_miou(tmp_path):
    gt_a = write_map(tmp_path, 'a', [[0, 0], [1, 255]])
    gt_c = write_map(tmp_path, 'c', [[0, 0], [1, 1]])
    pairs = [
        (info('a', ['seg'], seg_map_path=gt_a), pred('a', seg=[[0, 1], [1, 2]])),  # the 255 pixel is left out
        (info('b', ['det']), pred('b', seg=[[2, 2], [2, 2]])),  # not seg-labeled: skipped
    ]
    cm = A.seg_confusion_matrix(pairs, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    iou, miou = A.iou_from_confusion(cm)
    assert iou[0] == pytest.approx(0.5) and iou[1] == pytest.approx(0.5) and np.isnan(iou[2])
    # per image: road 1/2, sidewalk 2/3 -> 0.5833; classes in neither map do not count
    score = A.seg_image_score(info('c', ['seg'], seg_map_path=gt_c), pred('c', seg=[[0, 1], [1, 1]]), 19)
    assert score == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(ValueError, match='differ in size'):
        A.seg_image_score(info('c', ['seg'], seg_map_path=gt_c), pred('c', seg=[[0, 1, 1]]), 19)


def test_det_image_scores_and_ranking():
    gt = [box([0, 0, 10, 10], CAR)]
    pairs = [
        (info('perfect', ['det'], gt), pred('perfect', [([0, 0, 10, 10], .9, CAR)])),
        (info('iou62', ['det'], gt), pred('iou62', [([0, 0, 10, 6.2], .9, CAR)])),  # TP at IoU .50-.60: 3/10
        (info('empty_ok', ['det']), pred('empty_ok')),  # no box, none found: 1
        (info('empty_fp', ['det']), pred('empty_fp', [([0, 0, 5, 5], .9, CAR)])),  # no box, one found: 0
        (info('seg_only', ['seg']), pred('seg_only', [([0, 0, 5, 5], .9, CAR)])),  # not scored
    ]
    scores = A.image_scores(pairs, 'det', 3, score_thr=0.3)
    assert [s['img_path'] for s in scores] == ['perfect', 'iou62', 'empty_ok', 'empty_fp']
    assert [s['score'] for s in scores] == pytest.approx([1.0, 0.3, 1.0, 0.0])
    worst, best = A.worst_and_best(scores, 2)
    assert [s['img_path'] for s in worst] == ['empty_fp', 'iou62']
    assert [s['img_path'] for s in best] == ['perfect', 'empty_ok']


def test_match_to_dataset_names_unknown_images():

    class DS:

        def __len__(self):
            return 1

        def get_data_info(self, i):
            return info('x.png', ['det'])

    with pytest.raises(KeyError, match='not in the dataset'):
        A.match_to_dataset([pred('x.png'), pred('y.png')], DS())
    with pytest.raises(KeyError, match='no prediction'):
        A.match_to_dataset([], DS())


def run(cmd):
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO, MPLBACKEND='Agg'))
    assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return proc.stdout + proc.stderr


def test_tools_on_a_semi_supervised_tta_run(partial_root, tmp_path):
    """tools/test.py --tta --out on FixMatch* (teacher predicts), then both analysis tools on the pickle: each task
    counts exactly its labeled images of the val split [(det, seg), (det,), (seg,)]."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    tiny = osp.join(REPO, 'configs', 'demo', 'supervised_tiny.py')
    semi = osp.join(REPO, 'configs', 'demo', 'fixmatch_tiny.py')
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'model.pth')  # a supervised checkpoint: loads into student and teacher
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(tiny).model).state_dict(), meta=dict()), ckpt)
    pkl = str(tmp_path / 'preds.pkl')
    opts = ['--cfg-options', *cfg_options(partial_root)]
    run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), semi, ckpt, '--tta', '--out', pkl, '--work-dir',
        str(tmp_path / 'work'), *opts
    ])
    with open(pkl, 'rb') as f:
        assert len(pickle.load(f)) == 3

    out = run([
        sys.executable,
        osp.join(REPO, 'tools', 'analysis', 'confusion_matrix.py'), semi, pkl,
        str(tmp_path / 'cm'), '--score-thr', '0', *opts
    ])
    assert 'det: 2 images labeled for det (1 skipped)' in out
    det = json.loads((tmp_path / 'cm' / 'det_confusion_matrix.json').read_text())
    seg = json.loads((tmp_path / 'cm' / 'seg_confusion_matrix.json').read_text())
    assert det['num_images'] == 2 and seg['num_images'] == 2 and len(det['matrix']) == 9
    # every labeled pixel of the two seg-labeled images, and nothing else
    val = json.loads(open(osp.join(partial_root, 'annotations', 'val.json')).read())['data_list']
    labeled_pixels = sum(
        int((cv2.imread(osp.join(partial_root, d['seg_map_path']), cv2.IMREAD_UNCHANGED) != 255).sum()) for d in val
        if 'seg' in d['labeled_tasks'])
    assert np.sum(seg['matrix']) == labeled_pixels > 0
    assert osp.isfile(tmp_path / 'cm' / 'det_confusion_matrix.png')

    out = run([
        sys.executable,
        osp.join(REPO, 'tools', 'analysis', 'analyze_results.py'), semi, pkl,
        str(tmp_path / 'show'), '--topk', '1', *opts
    ])
    for task in ('det', 'seg'):
        scores = json.loads((tmp_path / 'show' / f'{task}_scores.json').read_text())
        assert scores['num_images'] == 2
        for kind in ('worst', 'best'):
            assert len(list((tmp_path / 'show' / task / kind).glob('*.png'))) == 1
