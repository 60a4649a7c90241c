"""Flip TTA (MultiTaskTTAModel, build_tta_pipeline, tools/test.py --tta): hand-made merges and flip equivariance."""
import json
import logging
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.logging import MMLogger
from mmengine.structures import InstanceData, PixelData

import mtssl_mm  # noqa: F401
from mtssl_mm.models import MultiTaskTTAModel, build_tta_pipeline
from mtssl_mm.tasks.attributes import AttributesTask
from mtssl_mm.tasks.base import BaseTask
from fixtures import REPO, TINY_CONFIG, cfg_options

H, W = 64, 128


def view(flip, boxes=(), scores=(), labels=(), logits=None):
    """A view's predicted data sample; ``flip=None``: no flip metainfo at all."""
    meta = dict(img_path='x.png', ori_shape=(H, W), img_shape=(H, W), scale_factor=(1., 1.), labeled_tasks=('det', ))
    if flip is not None:
        meta.update(flip=flip, flip_direction='horizontal')
    ds = DetDataSample(metainfo=meta)
    ds.pred_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.tensor(labels, dtype=torch.long))
    if logits is not None:
        ds.seg_logits = PixelData(data=logits)
        ds.pred_sem_seg = PixelData(sem_seg=logits.argmax(0, keepdim=True))
    return ds


class Identity(torch.nn.Module):
    """Returns the views as given; its ``tasks`` (the tiny model's det and seg, and an attribute task) merge them."""

    def __init__(self, predict_tasks=('det', 'seg')):
        super().__init__()
        from mmdet.registry import MODELS
        from mmengine.config import Config
        cfg = Config.fromfile(TINY_CONFIG)
        tasks = dict(
            cfg.model.tasks, attr=dict(type='AttributesTask', attributes=dict(weather=3, scene=2), in_channels=8))
        self.tasks = torch.nn.ModuleDict({n: MODELS.build(dict(c, name=n)) for n, c in tasks.items()})
        self.predict_tasks = tuple(predict_tasks)

    def test_step(self, data):
        return data['data_samples']


def tta(predict_tasks=('det', 'seg'), **kw):
    return MultiTaskTTAModel(module=Identity(predict_tasks), **kw)


def test_boxes_of_the_flipped_view_are_flipped_back_and_merged_by_nms():
    # the flipped view sees the car at x 0..10, i.e. x 118..128 in the original image; the plain view finds the same
    # car (lower score) and a person elsewhere
    flipped = view(True, [[0., 5., 10., 15.]], [0.9], [2])
    plain = view(False, [[118., 5., 128., 15.], [40., 20., 60., 50.]], [0.6, 0.7], [2, 0])
    out = tta(('det', )).merge_preds([[flipped, plain]])[0]
    assert out is plain  # the un-flipped view's sample (its ground truth is in the original orientation)
    order = out.pred_instances.scores.argsort(descending=True)
    assert torch.allclose(out.pred_instances.bboxes[order], torch.tensor([[118., 5., 128., 15.], [40., 20., 60., 50.]]))
    assert torch.allclose(out.pred_instances.scores[order], torch.tensor([0.9, 0.7]))  # NMS kept the best car
    assert out.pred_instances.labels[order].tolist() == [2, 0]
    # max_per_img cuts after NMS
    views = [view(True, [[0., 5., 10., 15.]], [0.9], [2]), view(False, [[40., 20., 60., 50.]], [0.7], [0])]
    out = tta(('det', ), tta_cfg=dict(max_per_img=1)).merge_preds([views])[0]
    assert len(out.pred_instances) == 1 and out.pred_instances.scores.item() == pytest.approx(0.9)


def test_seg_softmax_scores_are_flipped_back_and_averaged():
    k = 3
    logits = torch.randn(k, H, W)
    # an equivariant model: the flipped view's logits are the flip of the plain view's -> the merge is the plain one
    out = tta(keep_logits=True).merge_preds([[view(True, logits=logits.flip(-1)), view(False, logits=logits)]])[0]
    assert torch.allclose(out.seg_logits.data, logits.softmax(0), atol=1e-6)
    assert torch.equal(out.pred_sem_seg.sem_seg, logits.argmax(0, keepdim=True))
    # hand-made disagreement at pixel (0, 0): plain view says class 0 (p = .6), the flipped view, at its pixel
    # (0, W-1), says class 1 (p = .9) -> mean (.3, .65, .05) -> class 1
    p_plain = torch.full((k, H, W), 1 / 3)
    p_flip = torch.full((k, H, W), 1 / 3)
    p_plain[:, 0, 0] = torch.tensor([.6, .35, .05])
    p_flip[:, 0, W - 1] = torch.tensor([0., .9, .1])
    out = tta().merge_preds([[view(True, logits=p_flip.clamp_min(1e-12).log()), view(False, logits=p_plain.log())]])[0]
    assert out.pred_sem_seg.sem_seg[0, 0, 0].item() == 1
    assert 'seg_logits' not in out  # dropped unless keep_logits (memory)


def test_attribute_probabilities_are_averaged_over_the_views():
    """The attribute task merges with no edit outside its module: per attribute the mean softmax, then argmax."""

    def attr_view(flip, weather, scene):
        ds = view(flip)
        ds.pred_attribute_probs = dict(weather=torch.tensor(weather), scene=torch.tensor(scene))
        return ds

    # weather: plain view .5 for class 0, flipped .9 for class 2 -> mean (.25, .05, .7) -> 2; scene agrees on 1
    views = [attr_view(True, [0., .1, .9], [.2, .8]), attr_view(False, [.5, .0, .5], [.4, .6])]
    out = tta(predict_tasks=('attr', ), keep_logits=True).merge_preds([views])[0]
    assert out.pred_attributes.tolist() == [2, 1]
    assert torch.allclose(out.pred_attribute_scores, torch.tensor([.7, .7]))
    assert torch.allclose(out.pred_attribute_probs['weather'], torch.tensor([.25, .05, .7]))
    views = [attr_view(True, [0., .1, .9], [.2, .8]), attr_view(False, [.5, .0, .5], [.4, .6])]
    assert 'pred_attribute_probs' not in tta(predict_tasks=('attr', )).merge_preds([views])[0]
    no_probs = view(False)
    with pytest.raises(KeyError, match='keep_logits'):
        tta(predict_tasks=('attr', )).merge_preds([[attr_view(True, [1., 0., 0.], [1., 0.]), no_probs]])


def test_the_real_attribute_task_keeps_its_probabilities_for_tta():
    model = tta(predict_tasks=('attr', ))
    task = model.module.tasks['attr']
    assert task.keep_logits, 'switched on by the TTA model'
    ds = DetDataSample(metainfo=dict(img_path='x.png'))
    task.predict({'weather': torch.tensor([[0., 2., 0.]]), 'scene': torch.tensor([[1., 0.]])}, [ds])
    assert torch.allclose(ds.pred_attribute_probs['weather'], torch.tensor([0., 2., 0.]).softmax(0))


class NoMergeAttributes(AttributesTask):
    """An attribute task without the TTA hook."""
    merge_views = BaseTask.merge_views


def logged_messages():
    """A handler on mmengine's current logger that collects the messages (remove it with .close())."""
    logger = MMLogger.get_current_instance()
    handler = logging.Handler()
    handler.messages = []
    handler.emit = lambda record: handler.messages.append(record.getMessage())
    handler.close = lambda: logger.removeHandler(handler)
    logger.addHandler(handler)
    return handler


def test_a_task_without_merge_views_keeps_the_plain_view_with_one_warning():
    model = tta(predict_tasks=('det', 'attr'))
    model.module.tasks['attr'] = NoMergeAttributes(name='attr', attributes=dict(weather=3, scene=2), in_channels=8)
    plain = view(False, [[40., 20., 60., 50.]], [0.7], [0])
    plain.pred_attributes = torch.tensor([1, 0])
    log = logged_messages()
    try:
        for _ in range(2):
            out = model.merge_preds([[view(True, [[0., 5., 10., 15.]], [0.9], [2]), plain]])[0]
    finally:
        log.close()
    assert out is plain and out.pred_attributes.tolist() == [1, 0] and len(out.pred_instances) == 2
    said = [m for m in log.messages if 'merge_views' in m]
    assert len(said) == 1 and "task 'attr' (NoMergeAttributes) has no merge_views()" in said[0], log.messages


def test_a_view_without_flip_metainfo_or_logits_is_an_error():
    with pytest.raises(KeyError, match='flip'):
        tta().merge_preds([[view(True), view(None)]])
    no_logits = view(False)
    no_logits.pred_sem_seg = PixelData(sem_seg=torch.zeros(1, H, W, dtype=torch.long))
    with pytest.raises(KeyError, match='keep_logits'):
        tta().merge_preds([[view(True), no_logits]])
    with pytest.raises(ValueError, match='un-flipped'):
        tta().merge_preds([[view(True), view(True)]])


def test_tta_of_the_real_model_is_flip_equivariant():
    """TTA(x) == flip(TTA(flip(x))) for the tiny model: boxes and segmentation (exact up to float rounding)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.tasks.det.test_cfg.score_thr = 0.0  # an untrained model: keep low-score boxes so there is something
    torch.manual_seed(0)
    model = MODELS.build(dict(type='MultiTaskTTAModel', module=cfg.model, keep_logits=True))
    model.eval()
    img = torch.randint(0, 255, (3, H, W), dtype=torch.uint8)

    def run(x):
        meta = dict(
            img_path='x.png',
            ori_shape=(H, W),
            img_shape=(H, W),
            scale_factor=(1., 1.),
            flip_direction='horizontal',
            labeled_tasks=())  # no labels: predictions only
        data = dict(
            inputs=[[x.flip(-1)], [x]],
            data_samples=[[DetDataSample(metainfo=dict(meta, flip=True))],
                          [DetDataSample(metainfo=dict(meta, flip=False))]])
        with torch.no_grad():
            return model.test_step(data)[0]

    a, b = run(img), run(img.flip(-1))
    assert torch.allclose(a.seg_logits.data, b.seg_logits.data.flip(-1), atol=1e-6)
    assert torch.equal(a.pred_sem_seg.sem_seg, b.pred_sem_seg.sem_seg.flip(-1))
    assert len(a.pred_instances) > 0 and len(a.pred_instances) == len(b.pred_instances)
    from mmdet.structures.bbox import bbox_flip
    ia, ib = a.pred_instances.scores.argsort(), b.pred_instances.scores.argsort()
    assert torch.allclose(a.pred_instances.scores[ia], b.pred_instances.scores[ib])
    assert torch.allclose(a.pred_instances.bboxes[ia], bbox_flip(b.pred_instances.bboxes[ib], (H, W)), atol=1e-3)
    # the model alone is not flip-equivariant (convolutions are not), so the checks above can fail
    meta = dict(img_path='x.png', ori_shape=(H, W), img_shape=(H, W), scale_factor=(1., 1.), labeled_tasks=())
    with torch.no_grad():
        p, q = (
            model.module.test_step(dict(inputs=[x], data_samples=[DetDataSample(metainfo=meta)]))[0]
            for x in (img, img.flip(-1)))
    assert not torch.allclose(p.seg_logits.data, q.seg_logits.data.flip(-1), atol=1e-3)


def test_build_tta_pipeline_wraps_the_packer():
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadMultiTaskAnnotations'),
        dict(
            type='PackMultiTaskInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'labeled_tasks', 'instances'))
    ]
    tta_pipeline = build_tta_pipeline(test_pipeline)
    assert tta_pipeline[:2] == test_pipeline[:2]
    aug = tta_pipeline[2]
    assert aug['type'] == 'TestTimeAug'
    assert [t['prob'] for t in aug['transforms'][0]] == [1.0, 0.0]
    pack = aug['transforms'][1][0]
    assert pack['type'] == 'PackMultiTaskInputs' and pack['meta_keys'][-2:] == ('flip', 'flip_direction')
    assert 'flip' not in test_pipeline[2]['meta_keys']  # the config's pipeline is not modified
    with pytest.raises(ValueError, match='packing transform'):
        build_tta_pipeline(test_pipeline[:2])
    with pytest.raises(ValueError, match='RandomFlip'):
        build_tta_pipeline([dict(type='RandomFlip', prob=0.5)] + test_pipeline)


def test_tools_test_tta_end_to_end(partial_root, tmp_path):
    """tools/test.py --tta --out on the tiny config with a checkpoint: metrics (with class-wise keys) and the
    merged predictions (un-flipped sample, no logits) in the pickle."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY_CONFIG).model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    out_pkl = str(tmp_path / 'preds.pkl')
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), TINY_CONFIG, ckpt, '--tta', '--out', out_pkl, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *cfg_options(partial_root)
    ]
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(__import__('os').environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "type='MultiTaskTTAModel'" in out and 'TestTimeAug' in out
    assert 'seg: class-wise IoU' in out and 'mean ± std' in out
    with open(out_pkl, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 3
    for p in preds:
        assert p['flip'] is False and 'seg_logits' not in p
        assert tuple(p['pred_sem_seg']['sem_seg'].shape) == (1, ) + tuple(p['ori_shape'])
        assert 'pred_instances' in p
    # the test run's JSON (mmengine LoggerHook) carries the class-wise scalars
    logs = list((tmp_path / 'work').glob('*/*.json'))
    assert len(logs) == 1
    metrics = json.loads(logs[0].read_text())
    assert 'seg/IoU_class_mean' in metrics and 'seg/IoU/road' in metrics and 'det/AP_num_classes' in metrics
