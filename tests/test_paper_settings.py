"""Every config runs the paper's experiment (section 4, Table 10): checked on the built configs, one by one.

- EMA 0.99 of the weights is what every method validates, selects and saves (section 4, *Evaluation*): mmengine's
  ``EMAHook`` for the supervised models, the EMA teacher for FixMatch* and Dense FixMatch;
- the weak view's horizontal flip is "disabled for invariant only FixMatch" (Table 10, *): FixMatch* configs have
  no ``RandomFlip``, Dense FixMatch and the supervised ones have it;
- RandAugment's 2 operations are drawn once per batch (Table 10, "# augmentations per batch 2");
- detection: classification and box regression weigh 1 : 1, losses are normalised per image (Eq. 3/4), and an
  ignore region never hands a box anchors it would not have without the region.
"""
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.config import Config
from mmengine.structures import InstanceData

import mtssl_mm  # noqa: F401
from mtssl_mm.tasks.detection import check_assigner
from fixtures import REPO

CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py')) if osp.basename(osp.dirname(p)) != '_base_')
IDS = [osp.relpath(p, REPO) for p in CONFIGS]


def method_of(cfg) -> str:
    if cfg.model.type != 'MultiTaskSemiSupervised':
        return 'supervised'
    return 'densefixmatch' if cfg.model.strong_aug.get('geometric', True) else 'fixmatch'


def train_pipelines(cfg) -> list:
    dataset = cfg.train_dataloader.dataset
    parts = dataset.datasets if dataset.type == 'ConcatDataset' else [dataset]
    return [part.pipeline for part in parts]


def detector_of(cfg):
    return cfg.model.get('detector', cfg.model)


DET_CONFIGS = [p for p in CONFIGS if 'det' in detector_of(Config.fromfile(p)).tasks]


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_every_method_evaluates_ema_weights(path):
    cfg = Config.fromfile(path)
    hooks = {h.type: h for h in cfg.custom_hooks}
    if method_of(cfg) == 'supervised':
        ema = hooks.get('EMAHook')
        assert ema is not None, 'section 4: the supervised baselines evaluate EMA weights too'
        assert ema.ema_type == 'ExponentialMovingAverage' and ema.momentum == pytest.approx(0.01)  # decay 0.99
        assert ema.update_buffers, 'BN running statistics follow the average'
        assert 'EMATeacherHook' not in hooks
    else:
        assert hooks['EMATeacherHook'].decay == pytest.approx(0.99)
        assert 'EMAHook' not in hooks, 'the teacher is the EMA; a second average would evaluate another model'
        assert cfg.model.semi_test_cfg.predict_on == 'teacher'


@pytest.mark.parametrize('path', CONFIGS, ids=IDS)
def test_weak_flip_only_where_table10_keeps_it(path):
    cfg = Config.fromfile(path)
    method = method_of(cfg)
    for pipeline in train_pipelines(cfg):
        flips = [step for step in pipeline if step['type'] == 'RandomFlip']
        if method == 'fixmatch':
            assert not flips, 'Table 10: horizontal flips disabled for invariant only FixMatch'
        else:
            assert len(flips) == 1 and flips[0]['prob'] == 0.5
        # the rest of the weak view is the same for every method: load, resize 0.5-2, crop, pack
        assert [s['type'] for s in pipeline if s['type'] != 'RandomFlip'] == [
            'LoadImageFromFile', 'LoadMultiTaskAnnotations', 'RandomResize', 'RandomCrop', 'PackMultiTaskInputs'
        ]


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if 'fixmatch' in osp.basename(p)],
    ids=[i for i in IDS if 'fixmatch' in osp.basename(i)])
def test_strong_augmentation_draws_its_ops_per_batch(path):
    cfg = Config.fromfile(path)
    aug = MODELS.build(cfg.model.strong_aug)
    assert aug.op_draw == 'batch' and aug.num_ops == 2
    assert aug.hflip_prob == (0.5 if method_of(cfg) == 'densefixmatch' else 0.0)
    params = aug.sample_params(16, 64, 64, generator=torch.Generator().manual_seed(0))
    assert (params['op_idx'] == params['op_idx'][:1]).all(), 'one draw of the 2 ops for the batch'
    assert params['magnitudes'].unique().numel() > 2, 'magnitudes are drawn per sample'


def test_per_sample_op_draw_stays_an_option():
    aug = MODELS.build(dict(type='StrongAugment', op_draw='sample'))
    params = aug.sample_params(16, 64, 64, generator=torch.Generator().manual_seed(0))
    assert not (params['op_idx'] == params['op_idx'][:1]).all()
    with pytest.raises(ValueError, match='op_draw'):
        MODELS.build(dict(type='StrongAugment', op_draw='image'))


@pytest.mark.parametrize('path', DET_CONFIGS, ids=[osp.relpath(p, REPO) for p in DET_CONFIGS])
def test_detection_loss_weights_and_normaliser(path):
    det = detector_of(Config.fromfile(path)).tasks.det
    assert det.head.loss_cls.loss_weight == 1.0 and det.head.loss_bbox.loss_weight == 1.0
    assert det.loss_normaliser == 'per_image'


# ------------------------------------------------------------------------ ignore regions and the assigner
IMG_W, IMG_H = 512, 256
BOX = [200.0, 100.0, 232.0, 132.0]  # 32 x 32
IGNORE = [100.0, 50.0, 400.0, 200.0]  # 300 x 150, the box inside it (a car inside a car group)


def anchors_of(det_cfg):
    """The config's anchors on a 512 x 256 image (every level), (N, 4)."""
    gen = TASK_UTILS.build(det_cfg.head.anchor_generator)
    sizes = [(-(-IMG_H // s[1]), -(-IMG_W // s[0])) for s in gen.strides]
    return torch.cat(gen.grid_priors(sizes, device='cpu'))


def positives(assigner, anchors, ignore):
    gt = InstanceData(bboxes=torch.tensor([BOX]), labels=torch.tensor([2]))
    ignored = InstanceData(
        bboxes=torch.tensor([IGNORE] if ignore else []).reshape(-1, 4),
        labels=torch.tensor([2] if ignore else [], dtype=torch.long))
    result = assigner.assign(InstanceData(priors=anchors), gt, ignored)
    return set((result.gt_inds > 0).nonzero().flatten().tolist())


@pytest.mark.parametrize('path', DET_CONFIGS, ids=[osp.relpath(p, REPO) for p in DET_CONFIGS])
def test_an_ignore_region_gives_a_box_no_positives_it_would_not_have(path):
    det = detector_of(Config.fromfile(path)).tasks.det
    assigner = TASK_UTILS.build(det.train_cfg.assigner)
    anchors = anchors_of(det)
    alone = positives(assigner, anchors, ignore=False)
    assert 0 < len(alone) < 50  # a 32 x 32 box: a few anchors per level
    assert positives(assigner, anchors, ignore=True) == alone


def test_the_probe_catches_the_assigner_that_hands_out_anchors():
    """The configs' former assigner (``ignore_iof_thr=0.5``, ``min_pos_iou=0``). On a 16 px grid of 16 px anchors
    every anchor overlapping the box lies in the region, the box keeps a best IoU of 0 and takes every anchor with
    IoU 0: hundreds of positives. With the configs' anchors (sizes 32-512 px) it loses most of its own instead."""
    det = Config.fromfile(osp.join(REPO, 'configs/cityscapes/supervised_partial.py')).model.tasks.det
    bad = dict(det.train_cfg.assigner, ignore_iof_thr=0.5)
    assigner = TASK_UTILS.build(bad)
    ys, xs = torch.meshgrid(torch.arange(IMG_H // 16) * 16., torch.arange(IMG_W // 16) * 16., indexing='ij')
    grid = torch.stack([xs, ys, xs + 16, ys + 16], -1).reshape(-1, 4)  # 512 anchors
    alone, inside = positives(assigner, grid, False), positives(assigner, grid, True)
    assert len(alone) <= 4 and len(inside) > 300, (len(alone), len(inside))
    anchors = anchors_of(det)
    alone, inside = positives(assigner, anchors, False), positives(assigner, anchors, True)
    assert alone != inside and len(inside) < len(alone) / 2, (len(alone), len(inside))
    with pytest.raises(ValueError, match='ignore_iof_thr'):
        check_assigner(bad)
    check_assigner(dict(bad, min_pos_iou=0.3))  # no low-quality match at IoU 0: the region cannot hand out anchors
    check_assigner(det.train_cfg.assigner)
