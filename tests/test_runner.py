"""Configs build, and mmengine's Runner trains the tiny config and evaluates it."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mtssl_mm  # noqa: F401
from fixtures import REPO, tiny_cfg

LEAF_CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
                      if osp.basename(osp.dirname(p)) not in ('_base_', 'demo'))


@pytest.mark.parametrize('path', LEAF_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_leaf_configs_build(path):
    """Every user-facing config builds its model (the real ResNet-50; ImageNet init turned off here)."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.init_cfg is not None, 'real configs keep ImageNet initialisation'
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    tasks = cfg.train_dataloader.dataset.tasks
    assert set(model.tasks) == set(tasks)
    assert cfg.optim_wrapper.optimizer.nesterov and cfg.optim_wrapper.optimizer.lr == 1e-3


def test_runner_trains_and_evaluates(partial_root, tmp_path):
    cfg = tiny_cfg(partial_root, str(tmp_path))
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = [json.loads(line) for line in open(glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))[0])]
    train = [s for s in scalars if 'det.loss_cls' in s]
    assert len(train) == 4 and all(torch.isfinite(torch.tensor(s['loss'])) for s in train)
    val = [s for s in scalars if 'multitask/gmean' in s]
    assert len(val) == 1
    for key in ('det/bbox_mAP', 'seg/mIoU', 'seg/num_images', 'det/num_images'):
        assert key in val[0]
    assert val[0]['det/num_images'] == 2 and val[0]['seg/num_images'] == 2
    assert glob.glob(str(tmp_path / 'best_multitask_gmean_iter_*.pth'))


@pytest.mark.parametrize('config', ['fixmatch_tiny.py', 'densefixmatch_tiny.py'])
def test_runner_trains_semi_supervised_methods(partial_root, tmp_path, config):
    cfg = tiny_cfg(partial_root, str(tmp_path), config=osp.join(REPO, 'configs', 'demo', config))
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = [json.loads(line) for line in open(glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))[0])]
    train = [s for s in scalars if 'seg.unsup.loss_ce' in s]
    assert len(train) == 4
    assert all(torch.isfinite(torch.tensor(s['loss'])) for s in train)
    assert all(s['seg.unsup.loss_ce'] > 0 for s in train)  # every batch has samples unlabeled for seg
    assert any('multitask/gmean' in s for s in scalars)
    # the teacher moved away from its start (EMA), and is what was evaluated (default predict_on)
    model = runner.model
    assert model.semi_test_cfg['predict_on'] == 'teacher'
    s, t = model.student.state_dict(), model.teacher.state_dict()
    assert any(not torch.equal(s[k], t[k]) for k in s if s[k].is_floating_point())
