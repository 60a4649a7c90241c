"""MultiTaskSemiSupervised: ramp-up, EMA teacher, loss masking per task and unsup_on, pseudo-labels, warps."""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.runner.checkpoint import load_state_dict
from mmengine.structures import InstanceData, PixelData
from torch import nn

import mtssl_mm  # noqa: F401
from mtssl_mm.engine import EMATeacherHook
from mtssl_mm.models.multitask_semi import sigmoid_rampup
from fixtures import REPO, unpadded_meta

FIXMATCH = f'{REPO}/configs/demo/fixmatch_tiny.py'
H, W = 64, 96


def tiny_semi(geometric=True, unsup_on='unlabeled'):
    torch.manual_seed(0)
    cfg = Config.fromfile(FIXMATCH).model
    cfg.strong_aug.geometric = geometric
    cfg.semi_train_cfg.unsup_on = unsup_on
    cfg.semi_train_cfg.rampup_iters = 0
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def sample(tasks, seed=0):
    g = torch.Generator().manual_seed(seed)
    ds = DetDataSample(metainfo=unpadded_meta(H, W, labeled_tasks=tuple(tasks)))
    ds.gt_instances = InstanceData(bboxes=torch.tensor([[10., 20., 50., 50.]]), labels=torch.tensor([2]))
    ds.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    seg = torch.randint(0, 19, (1, H, W), generator=g).to(torch.uint8)
    ds.gt_sem_seg = PixelData(sem_seg=seg if 'seg' in tasks else torch.full_like(seg, 255))
    return ds


def test_sigmoid_rampup_values():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(100, 100) == 1.0 and sigmoid_rampup(5000, 100) == 1.0
    values = [sigmoid_rampup(t, 100) for t in range(101)]
    assert values == sorted(values)


def test_rampup_follows_the_runner_iteration():
    from mmengine.logging import MessageHub
    model = tiny_semi()
    model.semi_train_cfg = dict(rampup_ratio=0.1)
    hub = MessageHub.get_current_instance()
    hub.update_info('max_iters', 1000)
    hub.update_info('iter', 50)
    try:
        assert model.rampup() == pytest.approx(math.exp(-5 * 0.5**2))
    finally:
        hub.update_info('iter', 0)
        hub.update_info('max_iters', 0)


def test_ema_update_moves_parameters_and_bn_buffers():
    model = tiny_semi()
    with torch.no_grad():
        for p in model.student.parameters():
            p.fill_(1.0)
        for p in model.teacher.parameters():
            p.fill_(0.0)
        bn_s, bn_t = model.student.backbone.bn1, model.teacher.backbone.bn1
        bn_s.running_mean.fill_(2.0)
        bn_t.running_mean.fill_(0.0)
        bn_s.num_batches_tracked.fill_(7)
    EMATeacherHook(decay=0.99).update(model, 1 - 0.99)
    for p in model.teacher.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.01))
    torch.testing.assert_close(bn_t.running_mean, torch.full_like(bn_t.running_mean, 0.02))
    assert bn_t.num_batches_tracked.item() == 7


def test_teacher_is_frozen_and_stays_in_eval_mode():
    model = tiny_semi().train()
    assert not model.teacher.training and model.student.training
    assert not any(p.requires_grad for p in model.teacher.parameters())


def test_supervised_checkpoint_loads_into_student_and_teacher():
    model = tiny_semi()
    sup = MODELS.build(Config.fromfile(FIXMATCH).model.detector)
    with torch.no_grad():
        for p in sup.parameters():
            p.normal_()
    load_state_dict(model, sup.state_dict(), strict=True)
    for name, p in sup.state_dict().items():
        torch.testing.assert_close(model.student.state_dict()[name], p)
        torch.testing.assert_close(model.teacher.state_dict()[name], p)


@pytest.mark.parametrize('unsup_on', ['unlabeled', 'all'])
def test_unsup_loss_goes_to_b_u_t_of_each_task(unsup_on, monkeypatch):
    model = tiny_semi(unsup_on=unsup_on)
    samples = [sample(('det', 'seg'), 0), sample(('det', ), 1), sample(('seg', ), 2), sample((), 3)]
    seen = {}
    for name, task in model.student.tasks.items():
        original = task.unsup_loss

        def spy(outs, data_samples, labels, _name=name, _orig=original):
            seen[_name] = [ds.labeled_tasks for ds in data_samples]
            assert len(labels) == len(data_samples)
            return _orig(outs, data_samples, labels)

        monkeypatch.setattr(task, 'unsup_loss', spy)
    losses = model.loss(torch.randn(4, 3, H, W), samples)
    if unsup_on == 'unlabeled':
        assert seen == {'det': [('seg', ), ()], 'seg': [('det', ), ()]}
    else:
        assert seen['det'] == seen['seg'] == [s.labeled_tasks for s in samples]
    assert losses['det.sup.num_labeled'].item() == 2 and losses['seg.sup.num_labeled'].item() == 2
    for key in ('det.unsup.loss_cls', 'det.unsup.loss_bbox', 'seg.unsup.loss_ce', 'det.lambda', 'seg.lambda',
                'det.pseudo_boxes_per_img'):
        assert key in losses


@pytest.mark.parametrize('student_views', ['all', 'needed'])
def test_no_unsup_sample_skips_the_teacher(student_views, monkeypatch):
    model = tiny_semi(unsup_on='unlabeled')
    model.student_views = student_views
    monkeypatch.setattr(model.teacher, 'extract_feat', lambda *a, **k: pytest.fail('no pseudo-label needed'))
    calls = []
    original = model.strong_aug.forward
    monkeypatch.setattr(model.strong_aug, 'forward', lambda imgs, *a, **k: calls.append(len(imgs)) or original(imgs))
    losses = model.loss(torch.randn(2, 3, H, W), [sample(('det', 'seg')), sample(('det', 'seg'), 1)])
    assert losses['det.unsup.loss_cls'] == 0 and losses['seg.unsup.loss_ce'] == 0
    # the authors' student batch has the strong views of every sample; the cheaper one only those it needs
    assert calls == ([2] if student_views == 'all' else [])


def test_no_pseudo_box_gives_finite_zero_det_loss_and_gradients_flow():
    model = tiny_semi()
    model.student.tasks['det'].pseudo_score_thr = 0.5
    model.teacher.tasks['det'].pseudo_score_thr = 2.0  # no teacher box can pass: sigma_det is empty
    losses = model.loss(torch.randn(2, 3, H, W), [sample(()), sample((), 1)])
    det_unsup = sum(losses['det.unsup.loss_cls']) + sum(losses['det.unsup.loss_bbox'])
    assert torch.isfinite(det_unsup) and det_unsup.item() == 0
    assert losses['det.pseudo_boxes_per_img'].item() == 0
    total = sum(sum(v) if isinstance(v, list) else v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in model.student.parameters() if p.requires_grad)


def test_det_unsup_loss_counts_only_anchors_matched_to_pseudo_boxes():
    """Predictions matched to background are discarded: changing their scores changes nothing."""
    model = tiny_semi()
    task = model.student.tasks['det']
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        outs = task(model.student.extract_feat(x))
    pseudo = [
        InstanceData(bboxes=torch.tensor([[10., 10., 40., 40.]]), labels=torch.tensor([2]), scores=torch.tensor([0.9]))
    ]
    ds = [sample(())]
    base = task.unsup_loss(outs, ds, pseudo).mean()
    # raise every class score far away from the pseudo box (rows/cols of the feature maps beyond it)
    shifted = ([c.clone() for c in outs[0]], outs[1])
    for c in shifted[0]:
        c[..., c.shape[-2] // 2 + 1:, :] += 5.0
    far = task.unsup_loss(shifted, ds, pseudo).mean()
    torch.testing.assert_close(sum(far['loss_cls']), sum(base['loss_cls']))
    # whereas the supervised loss (negatives count) changes
    sup_base = task.loss(outs, [sample(('det', ))]).mean()
    sup_far = task.loss(shifted, [sample(('det', ))]).mean()
    assert not torch.allclose(sum(sup_far['loss_cls']), sum(sup_base['loss_cls']))


def test_pooled_det_normaliser_an_image_without_pseudo_boxes_adds_nothing():
    """``loss_normaliser='pooled'`` (the option beside Eq. 3/4's per-image default, tests/test_det_normaliser.py):
    L_u,det over the positive anchors of the batch, not mmdet's per-image max(positives, 1)."""
    model = tiny_semi()
    task = model.student.tasks['det']
    task.loss_normaliser = 'pooled'
    with torch.no_grad():
        outs = task(model.student.extract_feat(torch.randn(2, 3, H, W)))
    boxes = InstanceData(
        bboxes=torch.tensor([[10., 10., 40., 40.]]), labels=torch.tensor([2]), scores=torch.tensor([0.9]))
    empty = boxes[:0]
    both = task.unsup_loss(outs, [sample(()), sample((), 1)], [boxes, empty])
    first = task.unsup_loss(tuple([o[:1] for o in level] for level in outs), [sample(())], [boxes])
    assert both.normaliser.item() == first.normaliser.item() > 0
    for key in ('loss_cls', 'loss_bbox'):
        torch.testing.assert_close(sum(both.mean()[key]), sum(first.mean()[key]))
    nothing = task.unsup_loss(outs, [sample(()), sample((), 1)], [empty, empty])
    assert nothing.normaliser.item() == 0 and sum(nothing.mean()['loss_cls']).item() == 0
    # the supervised loss keeps mmdet's RetinaNet convention: an all-negative labeled image counts 1
    sup = task.loss(outs, [sample(('det', )), sample(('det', ), 1)])
    no_box = sample(('det', ), 1)
    no_box.gt_instances = no_box.gt_instances[:0]
    assert task.loss(outs, [sample(('det', )), no_box]).normaliser.item() < sup.normaliser.item()
    assert task.loss(tuple([o[1:] for o in level] for level in outs), [no_box]).normaliser.item() == 1


# ------------------------------------------------------------------------ exact equivariance
@MODELS.register_module(force=True)
class ToyPixelBackbone(nn.Module):
    """Returns the image itself: with a 1x1 classifier on top, the model is pixel-wise, hence equivariant."""

    def forward(self, x):
        return (x, )


def toy_equivariant_model():
    seg_head = dict(
        type='mmseg.FCNHead',
        in_channels=3,
        channels=3,
        num_convs=0,
        concat_input=False,
        num_classes=2,
        dropout_ratio=0.0,
        in_index=0,
        norm_cfg=None,
        loss_decode=dict(type='mmseg.CrossEntropyLoss', avg_non_ignore=True))
    detector = dict(
        type='MultiTaskModel',
        backbone=dict(type='ToyPixelBackbone'),
        tasks=dict(seg=dict(type='SegmentationTask', head=seg_head)))
    model = MODELS.build(
        dict(
            type='MultiTaskSemiSupervised',
            detector=detector,
            data_preprocessor=dict(type='DetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]),
            strong_aug=dict(type='StrongAugment', ops=(), cutout=None, hflip_prob=1.0),
            semi_train_cfg=dict(unsup_on='all', rampup_iters=0)))
    with torch.no_grad():
        for net in (model.student, model.teacher):
            conv = net.tasks['seg'].head.conv_seg  # class 0 where red > blue, class 1 otherwise, confidently
            conv.weight.zero_()
            conv.weight[0, 0], conv.weight[0, 2], conv.weight[1, 0], conv.weight[1, 2] = 50., -50., -50., 50.
            conv.bias.zero_()
    return model.eval()


def test_exactly_equivariant_model_gives_zero_dense_fixmatch_loss(monkeypatch):
    model = toy_equivariant_model()
    img = torch.zeros(2, 3, H, W)
    img[:, 0, :, :W // 3] = 1.0  # red on the left third, blue elsewhere: not flip-symmetric
    img[:, 2, :, W // 3:] = 1.0
    samples = [sample(()), sample((), 1)]
    loss = model.loss(img, samples)['seg.unsup.loss_ce']
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    # without moving the pseudo-labels with the geometry (FixMatch on a flipped view), the loss is large
    monkeypatch.setattr(model.student.tasks['seg'], 'warp_pseudo_labels', lambda labels, m, size: labels)
    assert model.loss(img, samples)['seg.unsup.loss_ce'].item() > 1.0


@pytest.mark.parametrize('student_views,unsup_on,expected', [('all', 'unlabeled', 4 + 4), ('all', 'all', 4 + 4),
                                                             ('needed', 'unlabeled', 3 + 3), ('needed', 'all', 3 + 4)])
def test_student_batch_composition(student_views, unsup_on, expected, monkeypatch):
    """'all' (default, the authors' trainer): cat(all weak, all strong); 'needed': weak[L] + strong[U] only."""
    model = tiny_semi(unsup_on=unsup_on)
    assert model.student_views == 'all'  # the default
    model.student_views = student_views
    sizes = []
    original = model.student.extract_feat
    monkeypatch.setattr(model.student, 'extract_feat', lambda x: sizes.append(x.shape[0]) or original(x))
    samples = [sample(('det', 'seg'), 0), sample(('det', ), 1), sample(('seg', ), 2), sample((), 3)]
    losses = model.loss(torch.randn(4, 3, H, W), samples)
    assert sizes == [expected]
    assert losses['det.sup.num_labeled'].item() == 2 and losses['seg.sup.num_labeled'].item() == 2


@pytest.mark.parametrize('unsup_on', ['unlabeled', 'all'])
def test_student_views_change_no_loss_when_batch_statistics_play_no_part(unsup_on):
    """With BN in eval mode the extra views of 'all' are only seen by BN statistics: the losses are equal."""
    model = tiny_semi(unsup_on=unsup_on).eval()
    model.strong_aug = MODELS.build(
        dict(
            type='StrongAugment',
            ops=('Solarize', 'Rotate'),
            num_ops=2,
            cutout=None,
            magnitudes=dict(Solarize=(0.5, 0.5), Rotate=(10.0, 10.0))))
    x = torch.randn(4, 3, H, W)
    samples = [sample(('det', 'seg'), 0), sample(('det', ), 1), sample(('seg', ), 2), sample((), 3)]
    results = {}
    for views in ('all', 'needed'):
        model.student_views = views
        results[views] = model.loss(x, samples)
    for key, value in results['all'].items():
        if 'loss' in key:
            torch.testing.assert_close(
                sum(value) if isinstance(value, list) else value,
                sum(results['needed'][key]) if isinstance(value, list) else results['needed'][key],
                msg=key)


def test_unknown_student_views_is_an_error():
    cfg = Config.fromfile(FIXMATCH).model
    cfg.semi_train_cfg.student_views = 'weak'
    with pytest.raises(ValueError, match=r"semi_train_cfg.student_views must be one of \('all', 'needed'\)"):
        MODELS.build(cfg)


def test_batch_without_any_label_trains_on_strong_views_only():
    model = tiny_semi()
    losses = model.loss(torch.randn(2, 3, H, W), [sample(()), sample((), 1)])
    assert losses['det.sup.num_labeled'].item() == 0 and losses['seg.unsup.loss_ce'].item() > 0
    total = sum(sum(v) if isinstance(v, list) else v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert all(p.grad is not None for p in model.student.parameters() if p.requires_grad)


def test_loss_under_bf16_autocast_is_finite_and_backpropagates():
    """The mixed-precision path (CPU bf16 autocast here; AMP on CUDA): teacher, pseudo-labels, warps, losses."""
    model = tiny_semi()
    with torch.no_grad():  # a confident teacher: sigma_det keeps boxes, so the box warps run too
        model.teacher.tasks['det'].head.retina_cls.bias.fill_(4.0)
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(
            torch.randn(4, 3, H, W), [sample(
                ('det', 'seg')), sample(
                    ('det', )), sample(()), sample(('seg', ), 1)])
    assert losses['det.pseudo_boxes_per_img'].item() > 0
    total = sum(sum(v) if isinstance(v, list) else v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    grads = [p.grad for p in model.student.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize('semi', [True, False], ids=['densefixmatch', 'supervised'])
def test_every_loss_function_gets_float32_under_bf16_autocast(semi, monkeypatch):
    """mmcv's CUDA sigmoid_focal_loss (mmdet's FocalLoss on CUDA tensors) has float and half kernels only: every
    loss is computed in float32 with autocast off, whatever the forward pass's dtype. On CPU mmdet takes a PyTorch
    path that accepts bf16, so the dtypes reaching each loss function are recorded instead."""
    from mmdet.models.losses import FocalLoss, GIoULoss
    from mmseg.models.losses import CrossEntropyLoss
    seen = []
    for cls in (FocalLoss, GIoULoss, CrossEntropyLoss):
        original = cls.forward

        def spy(self, pred, *args, _orig=original, _name=cls.__name__, **kwargs):
            seen.append((_name, pred.dtype, torch.is_autocast_enabled('cpu')))
            return _orig(self, pred, *args, **kwargs)

        monkeypatch.setattr(cls, 'forward', spy)
    model = tiny_semi()
    with torch.no_grad():
        model.teacher.tasks['det'].head.retina_cls.bias.fill_(4.0)  # pseudo boxes: the unsupervised det loss runs
    net = model if semi else model.student
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = net.loss(
            torch.randn(4, 3, H, W), [sample(
                ('det', 'seg')), sample(
                    ('det', )), sample(()), sample(('seg', ), 1)])
    assert {name for name, _, _ in seen} == {'FocalLoss', 'GIoULoss', 'CrossEntropyLoss'}
    assert all(dtype == torch.float32 and not autocast for _, dtype, autocast in seen), seen
    assert all(v.dtype == torch.float32 for k, v in losses.items() if 'loss' in k and not isinstance(v, list))
