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

LEAF_CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
    if osp.basename(osp.dirname(p)) not in ('_base_', 'demo'))


@pytest.mark.parametrize('path', LEAF_CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_leaf_configs_build(path):
    """Every user-facing config builds its model (the real ResNet-50; ImageNet init turned off here)."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(path)
    detector = cfg.model.get('detector', cfg.model)  # the semi-supervised wrapper holds the detector
    assert detector.backbone.init_cfg is not None, 'real configs keep ImageNet initialisation'
    detector.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    student = getattr(model, 'student', model)
    assert set(student.tasks) == set(cfg.train_dataloader.dataset.get('tasks', ('det', 'seg')))
    assert cfg.optim_wrapper.optimizer.nesterov and cfg.optim_wrapper.optimizer.lr == 1e-3
    assert cfg.param_scheduler[0].end == cfg.train_cfg.max_iters
    evaluator = Runner.build_evaluator(None, cfg.val_evaluator)  # as the Runner does
    assert [type(m).__name__ for m in evaluator.metrics] == ['MultiTaskMetric']
    train_set = cfg.train_dataloader.dataset
    if train_set.type == 'ConcatDataset':  # options belong to its parts
        assert set(train_set) <= {'type', 'datasets', 'lazy_init', 'ignore_keys'}, sorted(train_set)
        assert all(part.get('filter_cfg') is None for part in train_set.datasets) or not hasattr(model, 'teacher')
    if cfg.train_dataloader.sampler.type == 'ExplicitSampler':
        assert cfg.train_dataloader.sampler.batch_size == cfg.train_dataloader.batch_size
    if hasattr(model, 'teacher'):
        assert {h.type for h in cfg.custom_hooks} >= {'EMATeacherHook', 'RNGStateHook'}
        assert train_set.get('filter_cfg') is None, 'semi-supervised runs keep unlabeled data'
        geometric = osp.basename(path).startswith('densefixmatch')
        assert model.strong_aug.geometric == geometric


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
    # The sample stream is fixed: InfiniteSampler(seed=0) over the 6 PARTIAL samples gives the batches of 4
    # [2, 5, 3, 0], [1, 4, 3, 0], [5, 4, 2, 1], [5, 2, 1, 3], each with a sample unlabeled for seg (1, 3, 5).
    # Unseeded, the batch that spans two permutations held only seg-labeled samples (0, 2, 4) for 76 of 2000
    # seeds: no seg.unsup loss in that iteration, a failure in ~4 % of runs of each parametrisation.
    cfg.train_dataloader.sampler.seed = 0
    cfg.randomness = dict(seed=0)  # and the initialisation
    runner = Runner.from_cfg(cfg)
    seen = []
    orig = runner.model.loss

    def loss(inputs, samples):
        seen.append([s.labeled_tasks for s in samples])
        return orig(inputs, samples)

    runner.model.loss = loss
    runner.train()
    # the precondition of the check below: every batch has a sample unlabeled for seg
    assert len(seen) == 4 and all(any('seg' not in t for t in batch) for batch in seen), seen
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


def test_teacher_and_student_both_evaluated_with_mmdet_loop(partial_root, tmp_path):
    cfg = tiny_cfg(partial_root, str(tmp_path), config=osp.join(REPO, 'configs', 'demo', 'fixmatch_tiny.py'))
    cfg.val_cfg = dict(type='TeacherStudentValLoop')
    cfg.default_hooks.checkpoint.save_best = 'teacher/multitask/gmean'
    cfg.train_cfg.max_iters = 2
    cfg.train_cfg.val_interval = 2
    cfg.param_scheduler[0].end = 2
    Runner.from_cfg(cfg).train()
    scalars = [json.loads(line) for line in open(glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))[0])]
    val = [s for s in scalars if 'teacher/multitask/gmean' in s]
    assert len(val) == 1 and 'student/multitask/gmean' in val[0] and 'student/seg/mIoU' in val[0]
    assert glob.glob(str(tmp_path / 'best_teacher_multitask_gmean_iter_2.pth'))
