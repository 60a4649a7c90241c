"""Pseudo-label quality against withheld labels: dataset/packing, hand-made counts, no loss sees them, ranks.

A split file withholds labels the annotation file has; ``MultiTaskDataset(withheld_labels=True)`` hands them to
the pipeline, which moves them like real labels, and ``PackMultiTaskInputs`` packs them apart
(``withheld_instances`` / ``withheld_sem_seg``). The model measures the teacher against them
(``measure_pseudo_quality``) and never trains on them.
"""
import copy
import json
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData, PixelData

import mtssl_mm  # noqa: F401
from mtssl_mm.augmentation import warp_seg_maps
from mtssl_mm.engine.hooks.pseudo_label_quality_hook import add_counts, reduce_counts
from mtssl_mm.tasks.detection.quality import box_counts, box_metrics
from mtssl_mm.tasks.segmentation.quality import seg_metrics
from fixtures import REPO, TINY_CONFIG, unpadded_meta, write_dataset
from gloo_group import init_gloo, start_gloo_processes

DENSE = f'{REPO}/configs/demo/densefixmatch_tiny.py'
# 4 images labeled for both tasks in the annotation file; the split keeps det for 0, 1 and seg for 0, 2
WITHHELD = [(), ('seg', ), ('det', ), ('det', 'seg')]
CROWD = dict(bbox=[2.0, 30.0, 40.0, 60.0], label='person', ignore_flag=1)


@pytest.fixture(scope='module')
def withheld_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('withheld'))
    ann = write_dataset(root, [('det', 'seg')] * 4, split='train', seed=3, extra_instances={2: [CROWD]})
    names = [d['img_path'] for d in ann['data_list']]
    with open(osp.join(root, 'split.json'), 'w') as f:
        json.dump(dict(labeled=dict(det=names[:2], seg=[names[0], names[2]])), f)
    return root


def build_dataset(root, **overrides):
    cfg = Config.fromfile(TINY_CONFIG).train_dataloader.dataset
    cfg.update(dict(dict(data_root=root, filter_cfg=None, split_file='split.json'), **overrides))
    return DATASETS.build(cfg)


def fetch(dataset, idx, seed):
    """Sample ``idx`` with the pipeline's random draws (numpy, random) seeded."""
    np.random.seed(seed)
    random.seed(seed)
    return dataset[idx]


def box_tensor(boxes):
    return boxes.tensor if hasattr(boxes, 'tensor') else boxes


# ----------------------------------------------------------------------------------- (c) dataset / packing
def test_withheld_labels_move_with_the_pipeline_and_leave_training_fields_alone(withheld_root):
    on = build_dataset(withheld_root, withheld_labels=True)
    off = build_dataset(withheld_root)
    full = build_dataset(withheld_root, split_file=None)  # every label, as training fields
    assert [on.get_data_info(i)['withheld_tasks'] for i in range(4)] == WITHHELD
    flips, moved = set(), 0
    for seed in range(8):
        for i in range(4):
            a, b, c = fetch(on, i, seed), fetch(off, i, seed), fetch(full, i, seed)
            sa, sb, sc = a['data_samples'], b['data_samples'], c['data_samples']
            assert torch.equal(a['inputs'], b['inputs']) and torch.equal(a['inputs'], c['inputs'])
            # training fields exactly as without withheld labels
            for field in ('gt_instances', 'ignored_instances'):
                fa, fb = getattr(sa, field), getattr(sb, field)
                assert torch.equal(box_tensor(fa.bboxes), box_tensor(fb.bboxes))
                assert box_tensor(fa.bboxes).dtype == box_tensor(fb.bboxes).dtype
                assert torch.equal(fa.labels, fb.labels)
            assert torch.equal(sa.gt_sem_seg.sem_seg, sb.gt_sem_seg.sem_seg)
            assert sa.gt_sem_seg.metainfo == sb.gt_sem_seg.metainfo
            meta_a = {k: v for k, v in sa.metainfo.items() if k != 'withheld_tasks'}
            assert meta_a.keys() == sb.metainfo.keys()
            assert all(np.array_equal(np.asarray(meta_a[k]), np.asarray(sb.metainfo[k])) for k in meta_a)
            assert sa.withheld_tasks == WITHHELD[i] and 'withheld_tasks' not in sb
            assert 'withheld_instances' not in sb and 'withheld_sem_seg' not in sb
            # withheld labels: where the same pipeline puts real labels (crowd boxes are no ground truth)
            if 'det' in WITHHELD[i]:
                torch.testing.assert_close(
                    sa.withheld_instances.bboxes, box_tensor(sc.gt_instances.bboxes).float(), rtol=0, atol=0)
                assert torch.equal(sa.withheld_instances.labels, sc.gt_instances.labels)
                moved += len(sa.withheld_instances)
            else:
                assert 'withheld_instances' not in sa
            if 'seg' in WITHHELD[i]:
                assert torch.equal(sa.withheld_sem_seg.sem_seg, sc.gt_sem_seg.sem_seg)
                assert (sa.withheld_sem_seg.sem_seg != 255).any()
            else:
                assert 'withheld_sem_seg' not in sa
            flips.add(bool(sc.metainfo['flip']))
    assert flips == {True, False} and moved > 0, 'the seeds must exercise flips and keep some boxes'
    # the crowd box of image 2 reaches the full dataset as an ignored box, never the withheld ground truth
    assert any(len(fetch(full, 2, s)['data_samples'].ignored_instances) for s in range(8))


def test_box_dependent_transforms_are_refused_with_withheld_labels(withheld_root):
    cfg = Config.fromfile(TINY_CONFIG).train_dataloader.dataset
    pipeline = copy.deepcopy(cfg.pipeline)
    for t in pipeline:
        if t['type'] == 'RandomCrop':
            t['allow_negative_crop'] = False
    with pytest.raises(ValueError, match='allow_negative_crop'):
        build_dataset(withheld_root, withheld_labels=True, pipeline=pipeline)
    build_dataset(withheld_root, pipeline=pipeline)  # fine without withheld labels
    # a box-dependent transform nested in a wrapper (mmcv's RandomApply / RandomChoice) is found too
    nested = copy.deepcopy(cfg.pipeline)
    nested.insert(
        -1,
        dict(
            type='RandomApply',
            prob=0.5,
            transforms=[dict(type='RandomChoice', transforms=[[dict(type='FilterAnnotations')]])]))
    with pytest.raises(ValueError, match='FilterAnnotations'):
        build_dataset(withheld_root, withheld_labels=True, pipeline=nested)


# ---------------------------------------------------------------------------------- (b) hand-made numbers
def boxes(rows, scores=None):
    data = torch.tensor([r[:4] for r in rows], dtype=torch.float32).reshape(-1, 4)
    inst = InstanceData(bboxes=data, labels=torch.tensor([r[4] for r in rows], dtype=torch.long))
    if scores is not None:
        inst.scores = torch.tensor(scores, dtype=torch.float32)
    return inst


# image 1: withheld A (class 0), B (class 1); pseudo: a hit on A (0.9), a duplicate of A (0.8), B with the wrong
# class (0.6), B shifted by 1 px, IoU 81/119 (0.4); image 2: nothing withheld, one pseudo box (0.75)
PSEUDO = [
    boxes([[0, 0, 10, 10, 0], [0, 0, 10, 10, 0], [20, 20, 30, 30, 2], [21, 21, 31, 31, 1]], [0.9, 0.8, 0.6, 0.4]),
    boxes([[5, 5, 15, 15, 3]], [0.75])
]
GT = [boxes([[0, 0, 10, 10, 0], [20, 20, 30, 30, 1]]), boxes([])]
EXPECTED_DET = {
    'precision@0.3': 2 / 5,
    'recall@0.3': 1.0,
    'boxes_per_img@0.3': 2.5,
    'precision@0.5': 1 / 4,
    'recall@0.5': 0.5,
    'boxes_per_img@0.5': 2.0,
    'precision@0.7': 1 / 3,
    'recall@0.7': 0.5,
    'boxes_per_img@0.7': 1.5
}


def test_box_counts_hand_made():
    counts = box_counts(PSEUDO, GT, (0.3, 0.5, 0.7))
    assert counts['num_pseudo'].tolist() == [5, 4, 3] and counts['num_tp'].tolist() == [2, 1, 1]
    assert float(counts['num_withheld']) == 2 and float(counts['num_images']) == 2
    assert box_metrics(counts, (0.3, 0.5, 0.7)) == pytest.approx(EXPECTED_DET, abs=1e-12)
    # counts add over iterations (or ranks): the two images one at a time give the same metrics
    split = add_counts({}, {'det': box_counts(PSEUDO[:1], GT[:1], (0.3, 0.5, 0.7))})
    add_counts(split, {'det': box_counts(PSEUDO[1:], GT[1:], (0.3, 0.5, 0.7))})
    assert box_metrics(split['det'], (0.3, 0.5, 0.7)) == pytest.approx(EXPECTED_DET, abs=1e-12)
    # no pseudo box: precision is undefined and left out, recall is 0
    empty = box_counts([boxes([], [])], GT[:1], (0.5, ))
    assert box_metrics(empty, (0.5, )) == {'recall@0.5': 0.0, 'boxes_per_img@0.5': 0.0}


def semi_model(geometric=True):
    torch.manual_seed(0)
    cfg = Config.fromfile(DENSE).model
    cfg.strong_aug.geometric = geometric
    cfg.semi_train_cfg.rampup_iters = 0
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_detection_task_measures_the_warped_boxes_at_every_threshold(monkeypatch):
    """The task decodes the teacher's outputs at the lowest threshold and warps pseudo and withheld boxes alike:
    a flip changes nothing, a shift that pushes box A out of the view removes it from both sides."""
    task = semi_model().teacher.tasks['det']
    assert task.quality_score_thrs == (0.3, 0.5, 0.7)
    seen = {}

    def fake_predict(cls_scores, bbox_preds, batch_img_metas, cfg, rescale):
        seen['score_thr'], seen['rescale'] = cfg.score_thr, rescale
        return [copy.deepcopy(p) for p in PSEUDO]

    monkeypatch.setattr(task.head, 'predict_by_feat', fake_predict)
    samples = []
    for gt in GT:
        ds = DetDataSample(metainfo=dict(img_shape=(40, 40), batch_input_shape=(40, 40)))
        ds.withheld_instances = gt
        samples.append(ds)
    outs = ([torch.zeros(2, 1, 1, 1)], [torch.zeros(2, 1, 1, 1)])
    flip = torch.tensor([[-1., 0., 39.], [0., 1., 0.], [0., 0., 1.]]).expand(2, 3, 3)
    counts = task.quality_counts(outs, None, samples, flip, (40, 40))
    assert seen == dict(score_thr=0.05, rescale=False)  # the head's test_cfg is below 0.3 already
    assert task.quality_metrics(counts) == pytest.approx(EXPECTED_DET, abs=1e-12)
    shift = torch.tensor([[1., 0., -12.], [0., 1., 0.], [0., 0., 1.]]).expand(2, 3, 3)  # A and its copies leave
    metrics = task.quality_metrics(task.quality_counts(outs, None, samples, shift, (40, 40)))
    # left: B (withheld), B wrong class (0.6), B shifted (0.4, still IoU 81/119), the image-2 box (0.75) clipped
    # to 3 px wide (kept: the minimum is 2)
    assert metrics['recall@0.3'] == 1.0 and metrics['precision@0.3'] == pytest.approx(1 / 3)
    assert metrics['recall@0.5'] == 0.0 and metrics['boxes_per_img@0.5'] == 1.0
    empty = task.quality_counts(None, None, [], None, (40, 40))
    assert empty['num_pseudo'].tolist() == [0, 0, 0] and float(empty['num_images']) == 0


def test_segmentation_quality_hand_made_with_a_shift_out_of_view():
    """Weak view 4 x 6: withheld class 0 on rows 0-1 and 1 on rows 2-3 (one ignored pixel in column 5); the
    pseudo-labels get row 1 wrong. A shift by 2 px to the right leaves 4 of 6 columns in view, the ignored pixel
    out of it: 16 valid pixels, 12 right; IoU 0 = 4 / 8, IoU 1 = 8 / 12."""
    task = semi_model().teacher.tasks['seg']
    withheld = torch.zeros(4, 6, dtype=torch.uint8)
    withheld[2:] = 1
    withheld[3, 5] = 255
    weak_pseudo = withheld.long().clone()
    weak_pseudo[1] = 1
    weak_pseudo[3, 5] = 1
    shift = torch.tensor([[[1., 0., 2.], [0., 1., 0.], [0., 0., 1.]]])
    pseudo = warp_seg_maps(weak_pseudo[None], shift, (4, 6))
    ds = DetDataSample(metainfo=dict(img_shape=(4, 6), batch_input_shape=(4, 6)))
    ds.withheld_sem_seg = PixelData(sem_seg=withheld[None])
    counts = task.quality_counts(None, pseudo, [ds], shift, (4, 6))
    assert counts['confusion'][:2, :2].tolist() == [[4, 4], [0, 8]] and float(counts['confusion'].sum()) == 16
    assert task.quality_metrics(counts) == pytest.approx(dict(acc=12 / 16, mIoU=(4 / 8 + 8 / 12) / 2, in_view=16 / 24))
    # padding is not in view: an image of 4 x 3 padded to the 4 x 6 batch fills 3 of the strong view's columns
    ds.set_metainfo(dict(img_shape=(4, 3)))
    assert task.quality_metrics(task.quality_counts(None, pseudo, [ds], shift, (4, 6)))['in_view'] == 12 / 24
    assert seg_metrics(task.quality_counts(None, None, [], None, (4, 6))) == {}


# ------------------------------------------------------------------ (a) withheld labels never reach a loss
def loader_batch(dataset, seed):
    return pseudo_collate([fetch(dataset, i, seed + i) for i in range(len(dataset))])


def one_step(model, batch, measure):
    """Gradients and losses of one training step on ``batch`` (strong augmentation seeded)."""
    model = copy.deepcopy(model)
    model.measure_pseudo_quality = measure
    model.keep_pseudo_batch = measure
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    torch.manual_seed(1)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return grads, log_vars, model.pseudo_quality_counts


def test_withheld_labels_never_reach_a_loss(withheld_root):
    """One Dense FixMatch step: identical gradients and losses with withheld labels off, on (and measured), and
    on with other boxes, classes and maps -- while the measured numbers do change with them."""
    model = semi_model()
    model.train()
    with torch.no_grad():  # a confident teacher: pseudo boxes on every image, so L_u,det is not zero
        model.teacher.tasks['det'].head.retina_cls.bias.fill_(4.0)
    off = loader_batch(build_dataset(withheld_root), seed=5)
    on = loader_batch(build_dataset(withheld_root, withheld_labels=True), seed=5)
    changed = copy.deepcopy(on)
    g = torch.Generator().manual_seed(0)
    for ds in changed['data_samples']:
        if 'withheld_instances' in ds:
            n = len(ds.withheld_instances) + 2
            xy = torch.rand(n, 2, generator=g) * 30
            ds.withheld_instances = InstanceData(
                bboxes=torch.cat([xy, xy + 20], 1), labels=torch.randint(0, 8, (n, ), generator=g))
        if 'withheld_sem_seg' in ds:
            seg = ds.withheld_sem_seg.sem_seg
            ds.withheld_sem_seg = PixelData(sem_seg=torch.randint(0, 19, seg.shape, generator=g).to(seg.dtype))
    grads_off, losses_off, none = one_step(model, off, measure=False)
    grads_on, losses_on, counts_on = one_step(model, on, measure=True)
    grads_ch, losses_ch, counts_ch = one_step(model, changed, measure=True)
    assert none is None and counts_on is not None
    assert losses_off['det.unsup.loss_cls'] > 0 and losses_off['seg.unsup.loss_ce'] > 0
    for losses in (losses_on, losses_ch):
        assert losses.keys() == losses_off.keys()
        assert losses == losses_off
    for grads in (grads_on, grads_ch):
        assert grads.keys() == grads_off.keys() and len(grads) > 0
        assert all(torch.equal(grads[k], grads_off[k]) for k in grads_off), 'withheld labels changed a gradient'
    # the measurement did read them: B^u_det = images 2, 3 (det withheld), B^u_seg = images 1, 3
    assert float(counts_on['det']['num_images']) == 2 and float(counts_on['seg']['num_images']) == 2
    assert not torch.equal(counts_on['det']['num_tp'], counts_ch['det']['num_tp']) or \
        float(counts_on['det']['num_withheld']) != float(counts_ch['det']['num_withheld'])
    assert not torch.equal(counts_on['seg']['confusion'], counts_ch['seg']['confusion'])


# ------------------------------------------------------- (e) the hook's sums over ranks = one process
H, W = 64, 96
LAYOUT = [  # (labeled_tasks, withheld_tasks): rank 0 gets the first two samples, rank 1 the last two
    (('det', 'seg'), ()), (('det', ), ('seg', )), ((), ('det', 'seg')), (('seg', ), ('det', ))
]


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(len(LAYOUT), 3, H, W, generator=g)
    samples = []
    for i, (labeled, withheld) in enumerate(LAYOUT):
        ds = DetDataSample(metainfo=unpadded_meta(H, W, labeled_tasks=labeled, withheld_tasks=withheld))
        n = 2 + i
        xy = torch.rand(n, 2, generator=g) * torch.tensor([W * 0.6, H * 0.6])
        gt = InstanceData(bboxes=torch.cat([xy, xy + 24], 1), labels=torch.randint(0, 8, (n, ), generator=g))
        seg = torch.randint(0, 19, (1, H, W), generator=g).to(torch.uint8)
        ds.gt_instances = gt if 'det' in labeled else gt[:0]
        ds.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        ds.gt_sem_seg = PixelData(sem_seg=seg if 'seg' in labeled else torch.full_like(seg, 255))
        if 'det' in withheld:
            ds.withheld_instances = gt
        if 'seg' in withheld:
            ds.withheld_sem_seg = PixelData(sem_seg=seg)
        samples.append(ds)
    return inputs, samples


def deterministic_model():
    """Fixed strong ops (a sample's strong view does not depend on the batch), a confident teacher."""
    model = semi_model()
    model.strong_aug = MODELS.build(
        dict(
            type='StrongAugment',
            num_ops=2,
            cutout=None,
            geometric=True,
            hflip_prob=1.0,
            ops=('Solarize', 'Rotate'),
            magnitudes=dict(Solarize=(0.6, 0.6), Rotate=(12.0, 12.0))))
    with torch.no_grad():
        model.teacher.tasks['det'].head.retina_cls.bias.fill_(2.0)
    model.eval()  # BN statistics play no part; loss() runs the same
    model.measure_pseudo_quality = True
    return model


def measured(model, inputs, samples):
    with torch.no_grad():
        model.loss(inputs, samples)
    return model.pseudo_quality_counts


def _worker(rank, ports, world_size, out_dir, model):
    import torch.distributed as dist
    init_gloo(rank, world_size, ports)
    try:
        inputs, samples = make_batch()
        share = slice(rank * 2, rank * 2 + 2)
        total = {}
        for _ in range(2):  # two iterations, as the hook adds them before reducing
            add_counts(total, measured(model, inputs[share], samples[share]))
        reduced = reduce_counts(total)
        if rank == 0:
            torch.save(reduced, osp.join(out_dir, 'reduced.pth'))
    finally:
        dist.destroy_process_group()


def test_counts_summed_over_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    model = deterministic_model()
    start_gloo_processes(_worker, args=(2, str(tmp_path), model))
    reduced = torch.load(osp.join(tmp_path, 'reduced.pth'))
    inputs, samples = make_batch()
    one = add_counts({}, measured(model, inputs, samples))
    add_counts(one, measured(model, inputs, samples))
    assert reduced.keys() == one.keys() == {'det', 'seg'}
    for task in one:
        assert reduced[task].keys() == one[task].keys()
        for key in one[task]:
            assert torch.equal(reduced[task][key], one[task][key]), (task, key)
        metrics = model.teacher.tasks[task].quality_metrics(one[task])
        assert metrics == model.teacher.tasks[task].quality_metrics(reduced[task])
    # 2 iterations x (det: samples 2, 3; seg: samples 1, 2)
    assert float(one['det']['num_images']) == 4 and float(one['seg']['num_images']) == 4
    assert float(one['det']['num_pseudo'][0]) > 0 and float(one['seg']['confusion'].sum()) > 0


# ------------------------------------------------------------------------------------------------- configs
def test_low_data_semi_configs_measure_and_draw_the_pseudo_labels_full_data_ones_do_not():
    import glob
    paths = glob.glob(f'{REPO}/configs/cityscapes_lowdata/*.py') + glob.glob(f'{REPO}/configs/cityscapes/*.py')
    for path in sorted(paths):
        cfg = Config.fromfile(path)
        hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
        low_data = '/cityscapes_lowdata/' in path
        semi = cfg.model.type == 'MultiTaskSemiSupervised'
        assert bool(cfg.train_dataloader.dataset.get('withheld_labels')) == low_data, path
        assert ('PseudoLabelQualityHook' in hooks) == ('PseudoLabelVisHook' in hooks) == (low_data and semi), path
        if low_data and semi:  # the method's hooks are kept
            assert {'EMATeacherHook', 'RNGStateHook'} <= set(hooks), path
