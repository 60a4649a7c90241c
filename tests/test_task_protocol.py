"""The task protocol: model and data side registered as a pair, optional hooks after training, no task switches
outside ``mtssl_mm/tasks/``."""
import os
import os.path as osp
import re

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config

import mtssl_mm  # noqa: F401
from mtssl_mm.tasks.base import AFTER_TRAINING_HOOKS, BaseTask, implements
from fixtures import REPO, TINY_CONFIG


def seg_head():
    return Config.fromfile(TINY_CONFIG).model.tasks.seg.head


def test_a_model_side_under_another_tasks_name_is_an_error_at_build():
    with pytest.raises(
            TypeError,
            match=r"task 'det': the model side SegmentationTask pairs with SegmentationData "
            r"\(task 'seg'\), but 'det' is registered to DetectionData"):
        MODELS.build(dict(type='SegmentationTask', name='det', head=seg_head()))
    with pytest.raises(
            KeyError,
            match=r"SegmentationTask named 'depth': unknown task 'depth'; known tasks: "
            r"\['attr', 'det', 'seg'\]"):
        MODELS.build(dict(type='SegmentationTask', name='depth', head=seg_head()))
    # the whole model refuses it too, before any weight is built for nothing
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.tasks = dict(det=cfg.model.tasks.seg)
    with pytest.raises(TypeError, match="pairs with SegmentationData"):
        MODELS.build(cfg.model)


def test_a_task_class_without_a_data_side_is_an_error():

    class Depth(BaseTask):
        forward = loss = predict = pseudo_label = warp_pseudo_labels = unsup_loss = lambda *a: None

    with pytest.raises(TypeError, match='Depth: a task class must name its data side'):
        Depth(name='seg')


def test_every_task_implements_every_hook_after_training():
    """The three tasks of the package pass through TTA, the ONNX export and the picture hook."""
    cfg = Config.fromfile(TINY_CONFIG)
    tasks = dict(cfg.model.tasks, attr=dict(type='AttributesTask', attributes=dict(weather=3), in_channels=512))
    for name, task_cfg in tasks.items():
        task = MODELS.build(dict(task_cfg, name=name))
        missing = [hook for hook in AFTER_TRAINING_HOOKS if not implements(task, hook)]
        assert not missing, f'{name} lacks {missing}'


def test_no_code_outside_the_tasks_package_names_a_task_class():
    """Tools, models, evaluation, hooks and deploy ask the task (its hooks), never which class it is."""
    pattern = re.compile(r'SegmentationTask|DetectionTask|AttributesTask')
    hits = []
    for top, _, files in os.walk(osp.join(REPO, 'mtssl_mm')):
        if osp.join('mtssl_mm', 'tasks') in top:
            continue
        for f in files:
            if f.endswith('.py'):
                path = osp.join(top, f)
                with open(path) as fh:
                    hits += [f'{osp.relpath(path, REPO)}:{i}' for i, line in enumerate(fh, 1) if pattern.search(line)]
    assert not hits, hits


def test_attribute_predictions_reach_the_inference_json(tmp_path):
    """tools/infer.py's per-image JSON gets each task's entries from its data side: boxes, the seg PNG and, with no
    edit of the inferencer, the attributes."""
    import json

    import cv2
    import numpy as np

    from mtssl_mm.apis import MultiTaskInferencer
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.tasks.attr = dict(type='AttributesTask', attributes=dict(weather=3, scene=2), in_channels=512)
    names = dict(weather=['clear', 'rainy', 'snowy'], scene=['city street', 'highway'])
    cfg.test_dataloader.dataset.metainfo = dict(cfg.test_dataloader.dataset.metainfo, attr_classes=names)
    image = str(tmp_path / 'street.png')
    cv2.imwrite(image, np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8))
    with pytest.warns(UserWarning, match='initial weights'):
        inferencer = MultiTaskInferencer(cfg, None, device='cpu', score_thr=0.0, show_progress=False)
    out = tmp_path / 'out'
    inferencer([image], out_dir=str(out), no_save_vis=True)
    with open(out / 'preds' / 'street.json') as f:
        result = json.load(f)
    assert result['tasks'] == ['det', 'seg', 'attr']
    assert set(result['attributes']) == {'weather', 'scene'}
    for attr, entry in result['attributes'].items():
        assert entry['label'] in names[attr] and 0 < entry['score'] <= 1
    assert isinstance(result['boxes'], list) and result['seg'] == 'seg/street.png'
    assert cv2.imread(str(out / 'seg' / 'street.png'), cv2.IMREAD_UNCHANGED).shape == (64, 96)
    # the attribute names must fit the task: a clear error when the inferencer is built
    cfg.test_dataloader.dataset.metainfo = dict(
        cfg.test_dataloader.dataset.metainfo, attr_classes=dict(weather=names['weather']))
    with pytest.raises(
            ValueError,
            match=r"attr_classes has \{'weather': 3\} classes per attribute, the attribute "
            r"task \{'weather': 3, 'scene': 2\}"):
        MultiTaskInferencer(cfg, None, device='cpu', show_progress=False)
