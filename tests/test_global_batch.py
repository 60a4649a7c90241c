"""Think in global batches: k ranks x b samples under DDP give the gradients of one process on the k*b samples.

Eq. 3 and Eq. 4 average over the mini-batch of Table 10, which is global (8 GPUs x 1-2 images). The loss
normalisers (labeled pixels, positive anchors, pseudo-box anchors, in-view pixels) are therefore summed over
ranks (``mtssl_mm/tasks/task_loss.py``). These tests run the real models under ``DistributedDataParallel`` on
2 gloo processes and compare every parameter gradient with one process on the whole batch. BatchNorm and dropout
are in eval mode, so batch statistics play no part; the strong augmentation is made deterministic per sample
(fixed ops and magnitudes, no Cutout) so that both runs see the same strong views. Each layout leaves one rank
without any seg label, which a per-rank mean gets wrong.
"""
import copy
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData, PixelData
from torch.nn.modules.batchnorm import _BatchNorm

import mtssl_mm  # noqa: F401
from fixtures import REPO, unpadded_meta
from gloo_group import init_gloo, start_gloo_processes

H, W = 64, 96
WORLD = 2
# global batches of 4 (2 ranks x 2): rank 0 gets the first two samples, rank 1 the last two
LAYOUTS = {
    # explicit sampling: every rank 1 labeled + 1 other; rank 1 holds no seg label
    'explicit': [('det', 'seg'), (), ('det', ), ()],
    # implicit sampling: whatever falls where; rank 1 holds no seg label, and no unlabeled sample
    'implicit': [('det', 'seg'), ('seg', ), ('det', ), ('det', )],
    # rank 1 holds no label at all (no weak view is needed there with student_views='needed')
    'rank_unlabeled': [('det', 'seg'), ('seg', ), (), ()],
}
# model -> overrides of semi_train_cfg (None: the supervised MultiTaskModel)
MODELS_UNDER_TEST = {
    'supervised': None,
    'densefixmatch_unlabeled': dict(unsup_on='unlabeled'),
    'densefixmatch_all': dict(unsup_on='all'),
    'densefixmatch_needed_views': dict(unsup_on='unlabeled', student_views='needed'),
    'fixmatch_all': dict(unsup_on='all'),
}
CASES = [(m, layout) for m in MODELS_UNDER_TEST for layout in LAYOUTS]
LOGS = {}  # filled by the module fixture: 'ddp' (one dict per rank) and 'reference', case -> logged values


def build_model(name):
    """A tiny model with BN and dropout frozen and a confident teacher (sigma_det keeps boxes)."""
    torch.manual_seed(0)
    semi = MODELS_UNDER_TEST[name]
    if semi is None:
        cfg = Config.fromfile(f'{REPO}/configs/demo/supervised_tiny.py').model
    else:
        cfg = Config.fromfile(f'{REPO}/configs/demo/fixmatch_tiny.py').model
        cfg.semi_train_cfg.update(semi, rampup_iters=0)
        # the same strong view of a sample whichever rank it is on: fixed ops and magnitudes, a flip on every
        # sample (Dense FixMatch), no Cutout
        geometric = name.startswith('dense')
        # (the photometric ops run first in drawn order, the affine one after: the order of the draw is irrelevant)
        cfg.strong_aug = dict(
            type='StrongAugment',
            num_ops=2 if geometric else 1,
            cutout=None,
            geometric=geometric,
            hflip_prob=1.0 if geometric else 0.0,
            ops=('Solarize', 'Rotate') if geometric else ('Brightness', ),
            magnitudes=dict(Solarize=(0.6, 0.6), Rotate=(12.0, 12.0), Brightness=(1.3, 1.3)))
    model = MODELS.build(cfg)
    model.init_weights()
    if semi is not None:
        with torch.no_grad():  # a confident teacher: pseudo boxes on every image, so L_u,det is not zero
            model.teacher.tasks['det'].head.retina_cls.bias.fill_(4.0)
    model.train()
    for m in model.modules():
        if isinstance(m, (_BatchNorm, torch.nn.Dropout, torch.nn.Dropout2d)):
            m.eval()
    return model


def make_batch(layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(len(layout), 3, H, W, generator=g)
    samples = []
    for i, tasks in enumerate(layout):
        ds = DetDataSample(metainfo=unpadded_meta(H, W, labeled_tasks=tasks))
        n = (1, 14, 2, 25)[i % 4]  # very different numbers of boxes per image: per-image normalisers differ
        xy = torch.rand(n, 2, generator=g) * torch.tensor([W * 0.6, H * 0.6])
        wh = torch.rand(n, 2, generator=g) * 20 + 8
        ds.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1), labels=torch.randint(0, 8, (n, ), generator=g))
        ds.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        seg = torch.randint(0, 19, (1, H, W), generator=g).to(torch.uint8)
        seg[:, :, :10 * (i + 1)] = 255  # a different number of labeled pixels per image
        ds.gt_sem_seg = PixelData(sem_seg=seg if 'seg' in tasks else torch.full_like(seg, 255))
        if 'det' not in tasks:
            ds.gt_instances = ds.gt_instances[:0]
        samples.append(ds)
    return inputs, samples


def gradients(model, inputs, samples, logs=None):
    """Backward of the parsed total loss; the gradient of every trainable parameter (zeros where None). ``logs``
    (a dict) gets what mmengine logs: ``parse_losses``' log_vars as floats."""
    module = model.module if hasattr(model, 'module') else model
    losses = model(inputs, samples, mode='loss')
    loss, log_vars = module.parse_losses(losses)
    if logs is not None:
        logs.update({k: float(v) for k, v in log_vars.items()})
    loss.backward()
    return {
        n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in module.named_parameters() if p.requires_grad
    }


def _worker(rank, ports, world_size, out_dir, models):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    init_gloo(rank, world_size, ports)
    try:
        results, logs = {}, {}
        for name, layout in CASES:
            inputs, samples = make_batch(LAYOUTS[layout])
            share = slice(rank * len(samples) // world_size, (rank + 1) * len(samples) // world_size)
            model = DistributedDataParallel(copy.deepcopy(models[name]), device_ids=None, broadcast_buffers=False)
            logs[(name, layout)] = {}
            results[(name, layout)] = gradients(model, inputs[share], samples[share], logs[(name, layout)])
        torch.save(logs, osp.join(out_dir, f'ddp_logs_{rank}.pth'))
        if rank == 0:
            torch.save(results, osp.join(out_dir, 'ddp_grads.pth'))
    finally:
        dist.destroy_process_group()


def relative_error(a, b):
    return ((a - b).norm() / b.norm().clamp(min=1e-12)).item()


@pytest.fixture(scope='module')
def ddp_and_reference(tmp_path_factory):
    """Gradients of every case: 2 gloo DDP processes, and one process on the whole batch."""
    models = {name: build_model(name) for name in MODELS_UNDER_TEST}
    out_dir = str(tmp_path_factory.mktemp('ddp'))
    # fork: the workers inherit the imported modules and the built models
    start_gloo_processes(_worker, args=(WORLD, out_dir, models), nprocs=WORLD)
    ddp = torch.load(osp.join(out_dir, 'ddp_grads.pth'))
    ddp_logs = [torch.load(osp.join(out_dir, f'ddp_logs_{r}.pth')) for r in range(WORLD)]
    reference, reference_logs = {}, {}
    for name, layout in CASES:
        inputs, samples = make_batch(LAYOUTS[layout])
        reference_logs[(name, layout)] = {}
        reference[(name,
                   layout)] = gradients(copy.deepcopy(models[name]), inputs, samples, reference_logs[(name, layout)])
    LOGS.update(ddp=ddp_logs, reference=reference_logs)
    return ddp, reference


@pytest.mark.parametrize('name,layout', CASES)
def test_ddp_gradients_equal_one_process_on_the_global_batch(ddp_and_reference, name, layout):
    ddp, reference = ddp_and_reference
    got, want = ddp[(name, layout)], reference[(name, layout)]
    assert set(got) == set(want)
    errors = {n: relative_error(got[n], want[n]) for n in want if want[n].norm() > 0}
    # every part of the model that trains gets a gradient: the backbone and both tasks' heads
    for part in ('backbone.', "tasks.det.", "tasks.seg."):
        assert any(part in n for n in errors), (part, sorted(want)[:5])
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-4, f'{worst}: relative error {errors[worst]:.2e}'


@pytest.mark.parametrize('name,layout', CASES)
def test_every_rank_logs_the_global_batch_values(ddp_and_reference, name, layout):
    """Logged losses and statistics: every rank logs the same keys, with the values one process on the whole global
    batch logs -- also where a rank holds no seg label, or no sample of B^u_det (pseudo_boxes_per_img)."""
    want = LOGS['reference'][(name, layout)]
    for rank, logs in enumerate(LOGS['ddp']):
        got = logs[(name, layout)]
        assert set(got) == set(want), (rank, sorted(set(got) ^ set(want)))
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), (rank, key, got[key], want[key])
    assert want['loss'] > 0 and any(v > 0 for k, v in want.items() if k.startswith('seg.') and 'loss' in k)
    if MODELS_UNDER_TEST[name] is not None:
        assert want['det.pseudo_boxes_per_img'] > 0


def test_per_rank_normalisers_would_fail_this_test(ddp_and_reference):
    """The comparison can fail: per-rank means (what DDP gives without the all_reduce) are far off."""
    _, reference = ddp_and_reference
    model = build_model('supervised')
    inputs, samples = make_batch(LAYOUTS['explicit'])
    per_rank = [
        gradients(copy.deepcopy(model), inputs[r * 2:(r + 1) * 2], samples[r * 2:(r + 1) * 2]) for r in range(WORLD)
    ]
    averaged = {n: (per_rank[0][n] + per_rank[1][n]) / WORLD for n in per_rank[0]}
    want = reference[('supervised', 'explicit')]
    seg = [n for n in want if 'tasks.seg.' in n and want[n].norm() > 0]
    # rank 1 holds no seg label: its zero halves the seg gradient of a per-rank mean
    assert max(relative_error(averaged[n], want[n]) for n in seg) > 0.4
