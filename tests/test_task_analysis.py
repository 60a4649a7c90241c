"""The task protocol after training: the offline analysis asks each task's data side (``confusion_matrix``,
``image_score``), one IoU (``mtssl_mm.utils.confusion``) serves its three users with their numbers unchanged, and one
loader reads every label map (training pipeline and analysis) with errors that name the file."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS
from mmengine.config import Config

import mtssl_mm  # noqa: F401
from mtssl_mm.evaluation import analysis as A
from mtssl_mm.tasks import TASK_DATA
from mtssl_mm.tasks.segmentation.data import load_seg_map, semseg_classwise_iou
from mtssl_mm.tasks.segmentation.quality import seg_metrics
from mtssl_mm.utils.confusion import class_iou, iou_from_confusion
from fixtures import TINY_CONFIG, write_dataset


# ------------------------------------------------------------------------------------ analysis hooks
def test_a_task_without_analysis_is_named_with_the_tasks_that_have_one():
    pairs = [(dict(img_path='a', labeled_tasks=('attr', )), dict(img_path='a'))]
    with pytest.raises(
            ValueError,
            match=r"task 'attr' has no analysis \(AttributesData has no image_score\); "
            r"tasks that have one: \['det', 'seg'\]"):
        A.image_scores(pairs, 'attr', 3)
    with pytest.raises(
            ValueError, match=r"task 'depth' is not a registered task; tasks that have one: "
            r"\['det', 'seg'\]"):
        A.confusion_matrix(pairs, 'depth', 3)
    assert A.analysis_tasks('image_score') == A.analysis_tasks('confusion_matrix') == ['det', 'seg']


def test_the_generic_entry_points_hand_each_task_only_its_labeled_images(monkeypatch):
    from mtssl_mm.tasks import DetectionData
    seen = []

    class Spy(DetectionData):

        def confusion_matrix(self, pairs, num_classes, **options):
            seen.append([info['img_path'] for info, _ in pairs])
            return super().confusion_matrix(pairs, num_classes, **options)

    box = dict(bbox=[0, 0, 10, 10], bbox_label=0, ignore_flag=0)
    pred = dict(
        pred_instances=dict(
            bboxes=torch.tensor([[0., 0., 10., 10.]]), scores=torch.tensor([.9]), labels=torch.tensor([0])))
    pairs = [(dict(img_path='a', labeled_tasks=('det', ), instances=[box]), dict(pred, img_path='a')),
             (dict(img_path='b', labeled_tasks=('seg', ), instances=[]), dict(pred, img_path='b'))]
    monkeypatch.setitem(TASK_DATA, 'det', Spy())
    cm = A.confusion_matrix(pairs, 'det', 1, score_thr=0.3, tp_iou_thr=0.5)
    np.testing.assert_array_equal(cm, [[1, 0], [0, 0]])  # the seg-only image's box is no false positive
    np.testing.assert_array_equal(cm, A.det_confusion_matrix(pairs, 1))
    assert seen == [['a'], ['a']]


# ------------------------------------------------------------------------------------ one IoU
def old_analysis_iou(cm):
    """evaluation/analysis.py's iou_from_confusion before the move."""
    diag = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - diag
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = np.where(union > 0, diag / np.maximum(union, 1), np.nan)
    return iou, float(np.nanmean(iou)) if np.isfinite(iou).any() else float('nan')


def old_pseudo_miou(confusion):
    """the seg pseudo-label quality's seg_metrics mIoU before the move (None: no mIoU reported)."""
    confusion = confusion.double().cpu()
    if float(confusion.sum()) <= 0:
        return None
    inter = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


def random_confusions(n=300, seed=0):
    rng = np.random.default_rng(seed)
    out = [np.zeros((4, 4), dtype=np.int64), np.diag([0, 5, 0]).astype(np.int64)]
    for _ in range(n):
        k = int(rng.integers(2, 25))
        cm = rng.integers(0, 10**6, size=(k, k))
        absent = rng.random(k) < 0.3  # classes in neither ground truth nor prediction
        cm[absent, :] = 0
        cm[:, absent] = 0
        out.append(cm)
    return out


def test_one_iou_gives_each_caller_its_old_numbers():
    for cm in random_confusions():
        iou, miou = iou_from_confusion(cm)
        old_iou, old_miou = old_analysis_iou(cm)
        np.testing.assert_array_equal(iou, old_iou)  # analysis: bit-identical, NaN where absent
        assert miou == old_miou or (np.isnan(miou) and np.isnan(old_miou))
        t = torch.from_numpy(cm).double()
        counts = dict(confusion=t, num_in_view=torch.tensor(1.), num_pixels=torch.tensor(2.), num_images=1)
        got, old = seg_metrics(counts).get('mIoU'), old_pseudo_miou(t)
        assert (got is None) == (old is None)  # pseudo-label quality: no mIoU when nothing was counted
        if old is not None:
            assert got == pytest.approx(old, rel=1e-13, abs=0)  # same classes; the mean's summation order differs
        # class-wise report: SemSegMetric areas of the same pixels (split over two images), NaN -> no key
        diag = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - diag
        half = diag // 2
        results = [
            dict(
                area_intersect=torch.from_numpy(half),
                area_union=torch.from_numpy(union // 2),
                area_label=torch.from_numpy(cm.sum(1) // 2)),
            dict(
                area_intersect=torch.from_numpy(diag - half),
                area_union=torch.from_numpy(union - union // 2),
                area_label=torch.from_numpy(cm.sum(1) - cm.sum(1) // 2))
        ]
        names = [f'c{k}' for k in range(len(cm))]
        per_class, _, _ = semseg_classwise_iou(results, names)
        assert per_class == {n: float(diag[k] / union[k]) for k, n in enumerate(names) if union[k] > 0}
        assert list(per_class.values()) == [float(v) for v in iou[np.isfinite(iou)]]


def test_class_iou_marks_empty_unions():
    iou = class_iou([1, 0, 2], [2, 0, 2])
    assert iou[0] == 0.5 and np.isnan(iou[1]) and iou[2] == 1.0
    with pytest.raises(ValueError, match='2 intersections for 3 unions'):
        class_iou([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match=r'\(K, K\)'):
        iou_from_confusion(np.zeros((2, 3)))


# ------------------------------------------------------------------------------------ one label-map loader
def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def test_the_loader_names_the_file_missing_unreadable_multichannel_or_wrong_size(tmp_path):
    ok = str(tmp_path / 'ok.png')
    cv2.imwrite(ok, np.array([[0, 1, 255], [2, 2, 2]], np.uint8))
    np.testing.assert_array_equal(load_seg_map(dict(seg_map_path=ok), shape=(2, 3)), [[0, 1, 255], [2, 2, 2]])
    with pytest.raises(KeyError, match='image x.png is labeled for "seg" but has no seg_map_path'):
        load_seg_map(dict(img_path='x.png'))
    with pytest.raises(FileNotFoundError, match=r'seg map .*gone.png \(of image x.png\) not found'):
        load_seg_map(dict(seg_map_path=str(tmp_path / 'gone.png'), img_path='x.png'))
    for name, data in (('garbage.png', b'not a png'), ('empty.png', b'')):
        with pytest.raises(ValueError, match=rf'seg map .*{name} \(of image x.png\): not a readable image'):
            load_seg_map(dict(seg_map_path=write(tmp_path / name, data), img_path='x.png'))
    rgb = str(tmp_path / 'rgb.png')
    cv2.imwrite(rgb, np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match=r'rgb.png: expected a single-channel label image, got shape \(2, 3, 3\)'):
        load_seg_map(dict(seg_map_path=rgb))
    with pytest.raises(ValueError, match=r'ok.png: size 3x2 \(WxH\) differs from its image x.png \(4x2\)'):
        load_seg_map(dict(seg_map_path=ok, img_path='x.png'), shape=(2, 4))


def test_analysis_reads_maps_with_the_same_loader_and_checks_their_size(tmp_path):
    gt = str(tmp_path / 'gt.png')
    cv2.imwrite(gt, np.array([[0, 0], [1, 1]], np.uint8))
    pred = dict(img_path='a', pred_sem_seg=dict(sem_seg=torch.tensor([[[0, 1], [1, 1]]])))
    info = dict(img_path='a', labeled_tasks=('seg', ), seg_map_path=gt, height=2, width=2)
    assert A.seg_image_score(info, pred, 3) == pytest.approx((0.5 + 2 / 3) / 2)
    with pytest.raises(ValueError, match=r'gt.png: size 2x2 \(WxH\) differs from its image a \(3x2\)'):
        A.seg_confusion_matrix([(dict(info, width=3), pred)], 3)
    garbage = write(tmp_path / 'bad.png', b'\x89PNG broken')
    with pytest.raises(ValueError, match=r'bad.png \(of image a\): not a readable image'):
        A.image_scores([(dict(info, seg_map_path=garbage), pred)], 'seg', 3)


def build(root):
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.train_dataloader.dataset.data_root = root
    return DATASETS.build(cfg.train_dataloader.dataset)


def test_the_training_pipeline_names_an_unreadable_seg_map(tmp_path):
    root = str(tmp_path)
    ann = write_dataset(root, [('seg', )])
    path = osp.join(root, ann['data_list'][0]['seg_map_path'])
    os.remove(path)
    write(path, b'not a png')
    with pytest.raises(ValueError, match=r'gtFine_labelTrainIds.png \(of image .*leftImg8bit.png\): not a readable'):
        build(root)[0]


def test_every_registered_task_answers_the_analysis_protocol():
    for name, spec in TASK_DATA.items():
        if name in A.analysis_tasks('image_score'):
            assert name in A.analysis_tasks('confusion_matrix'), f'{name}: an image_score without a confusion_matrix'
