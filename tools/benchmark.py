"""Measure where a training step's time goes, and the speed of the pieces around it.

One run, one machine, the same images and the same labeled batch for every measurement:

1. The training step of supervised multi-task, FixMatch* and Dense FixMatch (explicit sampling: B labeled + B
   unlabeled), split into host->device copy (+ normalisation), strong augmentation, teacher forward,
   pseudo-labeling and label warping, student forward (+ losses), backward, optimizer step, EMA update.
   Reported: each part's share, the ratio of each semi-supervised step to the supervised one, and the share
   of everything that is not a forward/backward pass (goal: <= 5 % of the Dense FixMatch step).
   Beside it, Dense FixMatch with both student batches (``semi_train_cfg.student_views``): ``'all'`` (the
   default, the authors' ``cat(all weak, all strong)``) and ``'needed'`` (weak views of labeled samples, strong
   views of B^u only), on the explicit batch and on an implicit batch with one labeled image in 2B: step time
   and the share of strong views in the student batch.
2. Strong-augmentation throughput (images/s): our batched on-device path against a per-image CPU pipeline
   doing the same ops with mmdet's transforms (RandAugment of Table 10's ops + CutOut), at 800x800.
3. Inference of the multi-task model against the two single-task models (RetinaNet R50-FPN, DeepLabV3+ R50
   from the single-task configs) on the same images.
4. Data-loader throughput (the real training pipeline on generated images) per worker count, against what the
   Dense FixMatch step consumes.
5. EMA update: one fused ``torch._foreach_lerp_`` against a loop over parameters.
6. Anchors: one ``get_anchors`` of the detection head (the 2B images of a semi-supervised step, at the
   augmentation size) with mmdet's ``AnchorGenerator`` against the ``CachedAnchorGenerator`` the configs use;
   a semi-supervised step makes three such calls.

On CUDA only, also the images per second and peak memory per image (``torch.cuda.max_memory_allocated`` above
what was resident) of every training step and of every inference model, mmdet's own RetinaNet R50-FPN
(``retinanet_r50_fpn_1x_coco.py``, 8 classes) among the latter.

Usage::

    python tools/benchmark.py                      # CPU, reduced resolution, ~10 min on 2 cores
    python tools/benchmark.py --quick              # smoke run (< 2 min), used by the tests
    python tools/benchmark.py --device cuda --amp --size 800 --batch 8

Results: ``OUT/benchmark.json`` and ``OUT/benchmark.md`` (the markdown is also printed).
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import tempfile
import time
from contextlib import nullcontext

import numpy as np
import torch
from mmdet.registry import MODELS, TASK_UTILS, TRANSFORMS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

import mtssl_mm  # noqa: F401
from mtssl_mm.engine import EMATeacherHook
from mtssl_mm.models import predictor_config
from mtssl_mm.utils import SectionTimer
from mtssl_mm.utils.launch import index_of_type
from mtssl_mm.utils.toy_data import write_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = dict(
    supervised=('configs/cityscapes_lowdata/supervised_partial.py', 'supervised multi-task'),
    fixmatch=('configs/cityscapes_lowdata/fixmatch_explicit.py', 'FixMatch* (explicit)'),
    densefixmatch=('configs/cityscapes_lowdata/densefixmatch_explicit.py', 'Dense FixMatch (explicit)'),
)
STEP_PARTS = ('h2d', 'strong_aug', 'teacher_forward', 'pseudo_label_warp', 'student_forward', 'backward', 'optimizer',
              'ema')
PASSES = ('teacher_forward', 'student_forward', 'backward')  # the forward/backward passes Eq. 3-5 require
# Dense FixMatch's student batch (semi_train_cfg.student_views) on two batches: name -> (views, batch, label)
VIEW_RUNS = dict(
    densefixmatch=('all', 'explicit', 'explicit batch (B labeled + B unlabeled)'),
    densefixmatch_needed=('needed', 'explicit', 'explicit batch (B labeled + B unlabeled)'),
    densefixmatch_sparse=('all', 'sparse', 'implicit batch, 1 labeled image of 2B'),
    densefixmatch_sparse_needed=('needed', 'sparse', 'implicit batch, 1 labeled image of 2B'),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='bf16 autocast for forward passes (fp16 with loss '
        'scaling is what AmpOptimWrapper does on CUDA; bf16 needs no scaler)')
    parser.add_argument('--size', type=int, default=None, help='square crop size (default 320 on cpu, 800 cuda)')
    parser.add_argument(
        '--batch',
        type=int,
        default=None,
        help='labeled images per step B (the '
        'semi-supervised steps add B unlabeled ones; default 2 on cpu, 8 on cuda)')
    parser.add_argument('--iters', type=int, default=None, help='timed iterations per step type')
    parser.add_argument('--aug-size', type=int, default=800, help='image size of the augmentation benchmark')
    parser.add_argument('--workers', default=None, help='comma-separated worker counts (default 0,1,2)')
    parser.add_argument('--quick', action='store_true', help='smoke run, < 2 min on 2 CPU cores')
    parser.add_argument('--out', default='work_dirs/benchmark', help='output folder')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    cuda = args.device.startswith('cuda')
    if cuda and not torch.cuda.is_available():
        raise RuntimeError('--device cuda: CUDA is not available on this machine')
    if args.quick:
        defaults = dict(size=64, batch=2, iters=1, aug_size=128, workers='0,1')  # B >= 2: ASPP image-pool BN
    else:
        defaults = dict(
            size=800 if cuda else 320,
            batch=8 if cuda else 2,
            iters=5 if cuda else 2,
            aug_size=args.aug_size,
            workers='0,1,2')
    for key, value in defaults.items():
        if getattr(args, key, None) is None or (key == 'aug_size' and args.quick):
            setattr(args, key, value)
    args.workers = [int(w) for w in str(args.workers).split(',')]
    return args


# ------------------------------------------------------------------------------------------------ helpers
def build_model(config, device, **cfg_options):
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict(cfg_options)
    predictor_config(cfg).backbone.init_cfg = None  # timing only: no ImageNet download
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model.to(device)


def make_batch(n_labeled, n_unlabeled, size, seed):
    """A batch as the data loader gives it: uint8 (3, H, W) images and packed data samples."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(n_labeled + n_unlabeled):
        labeled = ('det', 'seg') if i < n_labeled else ()
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
        ds = DetDataSample(
            metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1., 1.), labeled_tasks=labeled))
        xy = torch.rand(6, 2, generator=g) * size * 0.7
        wh = torch.rand(6, 2, generator=g) * size * 0.3 + 8
        ds.gt_instances = InstanceData(
            bboxes=torch.cat([xy, (xy + wh).clamp(max=size)], 1), labels=torch.randint(0, 8, (6, ), generator=g))
        ds.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
        seg = torch.randint(0, 19, (1, size, size), generator=g, dtype=torch.uint8)
        ds.gt_sem_seg = PixelData(sem_seg=seg if labeled else torch.full_like(seg, 255))
        if not labeled:
            ds.gt_instances = ds.gt_instances[:0]
        samples.append(ds)
    return dict(inputs=inputs, data_samples=samples)


def autocast(device, amp):
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if amp else nullcontext()


def on_cuda(device):
    return torch.device(device).type == 'cuda'


class PeakMemory:
    """CUDA only: the largest memory allocated inside the ``with`` blocks above what was allocated on entering them
    (resident weights, optimizer state and the other models excluded), in bytes; ``peak`` stays None elsewhere."""

    def __init__(self, device):
        self.cuda = on_cuda(device)
        self.peak = None

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = max(self.peak or 0, torch.cuda.max_memory_allocated() - self.base)


def throughput(images, seconds, memory):
    """Images per second and peak MiB per image of ``images`` processed in ``seconds`` (CUDA figures)."""
    return dict(images=images, images_per_s=images / seconds, peak_mib_per_image=memory.peak / images / 2**20)


class StepRunner:
    """One model's training step with every part timed (mean seconds per part over the timed steps)."""

    def __init__(self, model, data, device, amp, ema):
        self.model, self.data, self.device, self.amp = model, data, device, amp
        self.optim = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                     lr=1e-5,
                                     momentum=0.9,
                                     nesterov=True,
                                     weight_decay=5e-4)
        self.timer = SectionTimer(device)
        self.ema = EMATeacherHook(decay=0.99) if ema else None
        self.steps = 0
        self.memory = PeakMemory(device)  # over the timed steps

    def step(self, timed=True):
        model = self.model
        timer = self.timer if timed else SectionTimer(self.device)  # warm-up steps: a throw-away timer
        model.train()
        model.timer = timer
        batch = copy.deepcopy(self.data)
        with self.memory if timed else nullcontext():
            self._step(model, timer, batch)
        model.timer = None
        self.steps += int(timed)

    def _step(self, model, timer, batch):
        with timer('h2d'):
            batch = model.data_preprocessor(batch, True)
        with timer('forward'), autocast(self.device, self.amp):
            losses = model.loss(batch['inputs'], batch['data_samples'])
        loss, _ = model.parse_losses(losses)
        if not torch.isfinite(loss):
            raise FloatingPointError(f'non-finite loss {loss.item()} in the benchmark step')
        with timer('backward'):
            loss.backward()
        with timer('optimizer'):
            self.optim.step()
            self.optim.zero_grad(set_to_none=True)
        if self.ema is not None:
            with timer('ema'):
                self.ema.update(model, 0.01)

    def parts(self):
        parts = {k: v / self.steps for k, v in self.timer.totals.items()}
        nested = sum(parts.get(k, 0.0) for k in ('teacher_forward', 'pseudo_label_warp', 'strong_aug'))
        parts['student_forward'] = parts.pop('forward') - nested
        parts = {k: parts.get(k, 0.0) for k in STEP_PARTS}
        parts['total'] = sum(parts.values())
        return parts


# ------------------------------------------------------------------------------------------- benchmarks
def sparse_batch(data):
    """The benchmark batch with only its first image labeled (both tasks): implicit sampling at a low ratio."""
    batch = copy.deepcopy(data)
    for ds in batch['data_samples'][1:]:
        ds.set_metainfo(dict(labeled_tasks=()))
        ds.gt_instances = ds.gt_instances[:0]
        ds.gt_sem_seg = PixelData(sem_seg=torch.full_like(ds.gt_sem_seg.sem_seg, 255))
    return batch


def bench_train_steps(args, data):
    """The steps, interleaved iteration by iteration so that machine drift hits them alike."""
    runners = {}
    for name, (config, _) in CONFIGS.items():
        _, model = build_model(config, args.device)
        batch = data if name != 'supervised' else dict(
            inputs=data['inputs'][:args.batch], data_samples=data['data_samples'][:args.batch])
        runners[name] = StepRunner(model, batch, args.device, args.amp, ema=name != 'supervised')
    batches = dict(explicit=data, sparse=sparse_batch(data))
    for name, (views, batch, _) in VIEW_RUNS.items():
        if name not in runners:
            _, model = build_model(
                CONFIGS['densefixmatch'][0], args.device, model=dict(semi_train_cfg=dict(student_views=views)))
            runners[name] = StepRunner(model, batches[batch], args.device, args.amp, ema=True)
    for it in range(args.iters + 1):
        for runner in runners.values():
            runner.step(timed=it > 0)
    results = {}
    for name, runner in runners.items():
        parts = runner.parts()
        passes = sum(parts[k] for k in PASSES)
        parts['non_pass_share'] = (parts['total'] - passes) / parts['total']
        results[name] = parts
    for name in ('fixmatch', 'densefixmatch'):
        results[name]['ratio_to_supervised'] = results[name]['total'] / results['supervised']['total']
    if on_cuda(args.device):
        results['throughput'] = {
            name: throughput(len(r.data['inputs']), results[name]['total'], r.memory)
            for name, r in runners.items()
        }
    results['student_batch'] = {}
    for name, (views, batch, _) in VIEW_RUNS.items():
        model = runners[name].model
        assert model.student_views == views
        plan = model.plan(batches[batch]['data_samples'])
        weak, strong = plan.weak_idx, plan.strong_idx
        results['student_batch'][name] = dict(
            student_views=views,
            weak_views=len(weak),
            strong_views=len(strong),
            strong_share=len(strong) / (len(weak) + len(strong)),
            step_s=results[name]['total'])
    return results


def mmdet_randaugment():
    """mmdet's per-image transforms doing Table 10's ops: RandAugment (2 of 15) + CutOut (10-30 % area)."""
    ops = [
        'AutoContrast', 'Equalize', 'Invert', 'Solarize', 'Posterize', 'Color', 'Contrast', 'Brightness', 'Sharpness',
        'ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate'
    ]
    space = [[dict(type=op)] for op in ops] + [[dict(type='RandomFlip', prob=1.0)]]
    return [
        TRANSFORMS.build(dict(type='RandAugment', aug_space=space, aug_num=2)),
        TRANSFORMS.build(dict(type='CutOut', n_holes=1, cutout_ratio=[(0.32, 0.32), (0.55, 0.55)]))
    ]


def bench_strong_aug(args):
    """Both augmentations over the same images, ``reps`` times, interleaved; each repeat draws new ops."""
    n = 4 if args.quick else 16
    reps = 1 if args.quick else 5
    size = args.aug_size
    g = torch.Generator().manual_seed(args.seed)
    imgs = torch.rand(n, 3, size, size, generator=g)
    aug = MODELS.build(dict(type='StrongAugment', geometric=True)).to(args.device)
    batch = imgs.to(args.device)
    aug(batch, generator=torch.Generator().manual_seed(args.seed))  # warm-up
    pipeline = mmdet_randaugment()
    np_imgs = [(img.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for img in imgs]
    timer = SectionTimer(args.device)
    for rep in range(reps):
        with timer('batch'):
            aug(batch, generator=torch.Generator().manual_seed(args.seed + 1 + rep))
        with timer('per_image'):
            for img in np_imgs:
                results = dict(img=img.copy(), img_shape=img.shape[:2])
                for t in pipeline:
                    results = t(results)
    return dict(
        images=n,
        draws=reps,
        size=size,
        batch_images_per_s=n * reps / timer.totals['batch'],
        per_image_cpu_images_per_s=n * reps / timer.totals['per_image'])


def bench_inference(args, data):
    """Multi-task model against the two single-task models, interleaved, on the same images."""
    batch_data = dict(inputs=data['inputs'][:args.batch], data_samples=data['data_samples'][:args.batch])
    models = {}
    for name, config in (('multitask', 'configs/cityscapes/supervised_partial.py'),
                         ('retinanet_r50_fpn', 'configs/cityscapes/supervised_det.py'),
                         ('deeplabv3plus_r50', 'configs/cityscapes/supervised_seg.py')):
        models[name] = build_model(config, args.device)[1].eval()
    cuda = on_cuda(args.device)
    if cuda:  # mmdet's own RetinaNet R50-FPN (output stride 32, mmdet's config), with the 8 Cityscapes classes
        import mmdet
        config = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', 'retinanet', 'retinanet_r50_fpn_1x_coco.py')
        models['mmdet_retinanet_r50_fpn'] = build_model(
            config, args.device, model=dict(bbox_head=dict(num_classes=8)))[1].eval()
    memory = {name: PeakMemory(args.device) for name in models}
    timer = SectionTimer(args.device)
    with torch.no_grad(), autocast(args.device, args.amp):
        for it in range(args.iters + 1):
            if it == 1:
                timer.reset()
            for name, model in models.items():
                batch = model.data_preprocessor(copy.deepcopy(batch_data), False)
                with timer(name), memory[name] if it else nullcontext():
                    model.predict(batch['inputs'], batch['data_samples'])
                if name == 'multitask':
                    with timer('backbone'):
                        model.extract_feat(batch['inputs'])
    out = {k: v / args.iters for k, v in timer.totals.items()}
    separate = out['retinanet_r50_fpn'] + out['deeplabv3plus_r50']
    out['ratio_multitask_to_separate'] = out['multitask'] / separate
    # sharing should save exactly one backbone pass
    out['expected_ratio'] = (separate - out['backbone']) / separate
    if cuda:
        out['throughput'] = {name: throughput(args.batch, out[name], memory[name]) for name in models}
    return out


def set_crop(pipeline, size, config, key='train_dataloader.dataset.pipeline'):
    """Resize ``pipeline``'s images (``RandomResize``) to ``2 * size`` x ``size`` and crop (``RandomCrop``)
    ``size`` x ``size``, in place; the transforms are found by type in ``config``'s ``key``.

    Raises:
        KeyError: ``pipeline`` has no ``RandomResize`` or no ``RandomCrop`` (the message names the config).
    """
    pipeline[index_of_type(pipeline, 'RandomResize', config, key)].scale = (2 * size, size)
    pipeline[index_of_type(pipeline, 'RandomCrop', config, key)].crop_size = (size, size)


def bench_dataloader(args, step_seconds):
    from mmengine.runner import Runner

    config = CONFIGS['densefixmatch'][0]
    cfg = Config.fromfile(osp.join(REPO, config))
    size = args.size
    out = {}
    with tempfile.TemporaryDirectory() as root:
        n_images = 8 if args.quick else 32
        write_dataset(root, [('det', 'seg'), ()] * (n_images // 2), h=size, w=2 * size, seed=args.seed)
        loader_cfg = copy.deepcopy(cfg.train_dataloader)
        loader_cfg.dataset.update(data_root=root, split_file=None)
        set_crop(loader_cfg.dataset.pipeline, size, config)
        loader_cfg.batch_size = 2 * args.batch
        loader_cfg.sampler.batch_size = 2 * args.batch
        n_batches = 3 if args.quick else 8
        for workers in args.workers:
            loader_cfg.num_workers = workers
            loader_cfg.persistent_workers = workers > 0
            loader = Runner.build_dataloader(copy.deepcopy(loader_cfg), seed=args.seed)
            it = iter(loader)
            next(it)  # worker start-up is not throughput
            start = time.perf_counter()
            for _ in range(n_batches):
                next(it)
            out[f'workers_{workers}'] = n_batches / (time.perf_counter() - start)
            del it, loader
    out['train_steps_per_s'] = 1.0 / step_seconds
    return out


def bench_ema(args):
    _, model = build_model(CONFIGS['densefixmatch'][0], args.device)
    pairs = [(t, s) for t, s in zip(model.teacher.parameters(), model.student.parameters())]
    hook = EMATeacherHook(decay=0.99)
    repeats = 3 if args.quick else 20
    timer = SectionTimer(args.device)
    hook.update(model, 0.01)  # warm-up, collects the tensor lists
    with torch.no_grad():
        with timer('foreach'):
            for _ in range(repeats):
                hook.update(model, 0.01)
        with timer('loop'):
            for _ in range(repeats):
                for t, s in pairs:
                    t.mul_(0.99).add_(s, alpha=0.01)
    return dict(
        tensors=len(pairs),
        foreach_ms=1e3 * timer.totals['foreach'] / repeats,
        loop_ms=1e3 * timer.totals['loop'] / repeats)


def bench_anchors(args):
    cfg = Config.fromfile(osp.join(REPO, CONFIGS['densefixmatch'][0]))
    head = predictor_config(cfg).tasks.det.head
    gens = dict(
        cached=TASK_UTILS.build(head.anchor_generator),
        plain=TASK_UTILS.build(dict(head.anchor_generator, type='AnchorGenerator')))
    size = args.aug_size
    featmap_sizes = [(-(-size // s), -(-size // s)) for s in head.anchor_generator.strides]
    repeats = 3 if args.quick else 20
    timer = SectionTimer(args.device)
    for name, gen in gens.items():
        for rep in range(repeats + 1):
            with timer(name) if rep else nullcontext():  # the first call (a cache miss) is not timed
                gen.grid_priors(featmap_sizes, device=args.device)
                for _ in range(2 * args.batch):
                    gen.valid_flags(featmap_sizes, (size, size), args.device)
    return dict(
        size=size,
        images=2 * args.batch,
        anchors=sum(a.shape[0] for a in gens['plain'].grid_priors(featmap_sizes, device=args.device)),
        plain_ms=1e3 * timer.totals['plain'] / repeats,
        cached_ms=1e3 * timer.totals['cached'] / repeats)


# ---------------------------------------------------------------------------------------------- report
def markdown(res):
    a = res['args']
    lines = [
        f"Machine: {res['machine']}; device {a['device']}, AMP {a['amp']}, crop {a['size']}x{a['size']}, "
        f"B = {a['batch']} labeled (+ {a['batch']} unlabeled for the semi-supervised steps), "
        f"{a['iters']} timed iterations.", '', '**1. Training step** (ms per step; share of the step)', '',
        '| part | ' + ' | '.join(label for _, label in CONFIGS.values()) + ' |', '|---|' + '---|' * len(CONFIGS)
    ]
    steps = res['train_step']
    for part in STEP_PARTS + ('total', ):
        cells = []
        for name in CONFIGS:
            v = steps[name][part]
            cells.append(f'{1e3 * v:.0f}' + ('' if part == 'total' else f" ({100 * v / steps[name]['total']:.1f} %)"))
        lines.append(f'| {part} | ' + ' | '.join(cells) + ' |')
    lines.append('| not a forward/backward pass | ' + ' | '.join(f"{100 * steps[n]['non_pass_share']:.1f} %"
                                                                 for n in CONFIGS) + ' |')
    lines.append('| step / supervised step | 1.00 | ' + ' | '.join(f"{steps[n]['ratio_to_supervised']:.2f}"
                                                                   for n in ('fixmatch', 'densefixmatch')) + ' |')
    lines += [
        '', "**1b. Dense FixMatch's student batch** (`semi_train_cfg.student_views`; 'all' is the default, "
        "the authors' `cat(all weak, all strong)`)", '',
        '| batch | student_views | weak + strong views | strong share | step (ms) |', '|---|---|---|---|---|'
    ]
    for name, (views, _, label) in VIEW_RUNS.items():
        v = steps['student_batch'][name]
        lines.append(f"| {label} | {views} | {v['weak_views']} + {v['strong_views']} | "
                     f"{100 * v['strong_share']:.0f} % | {1e3 * v['step_s']:.0f} |")
    s = res['strong_aug']
    i = res['inference']
    d = res['dataloader']
    e = res['ema']
    an = res['anchors']
    lines += [
        '',
        f"**2. Strong augmentation** at {s['size']}x{s['size']}, {s['images']} images x {s['draws']} draws: batched on "
        f"{a['device']} {s['batch_images_per_s']:.1f} images/s; mmdet per-image CPU pipeline "
        f"{s['per_image_cpu_images_per_s']:.1f} images/s "
        f"({s['batch_images_per_s'] / s['per_image_cpu_images_per_s']:.1f}x).", '',
        f"**3. Inference** ({a['batch']} images): multi-task {1e3 * i['multitask']:.0f} ms; RetinaNet R50-FPN "
        f"{1e3 * i['retinanet_r50_fpn']:.0f} ms + DeepLabV3+ R50 {1e3 * i['deeplabv3plus_r50']:.0f} ms; "
        f"ratio {i['ratio_multitask_to_separate']:.2f}, against {i['expected_ratio']:.2f} if sharing saves "
        f"exactly one backbone pass ({1e3 * i['backbone']:.0f} ms).", '',
        *cuda_lines(steps.get('throughput'), i.get('throughput')),
        '**4. Data loader** (batches of 2B per second, real training pipeline): ' +
        ', '.join(f"{k.split('_')[1]} workers {v:.2f}" for k, v in d.items() if k.startswith('workers_')) +
        f"; the Dense FixMatch step consumes {d['train_steps_per_s']:.2f} batches/s.", '',
        f"**5. EMA update** ({e['tensors']} tensors): fused foreach {e['foreach_ms']:.1f} ms, "
        f"per-parameter loop {e['loop_ms']:.1f} ms ({e['loop_ms'] / e['foreach_ms']:.1f}x).", '',
        f"**6. Anchors** (one get_anchors, {an['images']} images at {an['size']}x{an['size']}, "
        f"{an['anchors']} anchors per image): mmdet AnchorGenerator {an['plain_ms']:.2f} ms, "
        f"CachedAnchorGenerator {an['cached_ms']:.2f} ms; a semi-supervised step makes 3 such calls."
    ]
    return '\n'.join(lines)


def cuda_lines(train, inference):
    """The CUDA throughput and peak memory per image of the training steps and of inference (none elsewhere)."""
    lines = []
    for title, figures in (('training step', train), ('inference', inference)):
        if figures:
            lines += [
                f'**On CUDA, {title}**: ' +
                '; '.join(f"{name} {v['images_per_s']:.1f} images/s, {v['peak_mib_per_image']:.0f} MiB per image"
                          for name, v in figures.items()) + ' (peak above the resident memory).', ''
            ]
    return lines


def main(argv=None):
    args = parse_args(argv)
    init_default_scope('mmdet')
    MMLogger.get_instance('benchmark', log_level='WARNING')  # the current logger: no weight-init chatter
    torch.manual_seed(args.seed)
    start = time.time()
    data = make_batch(args.batch, args.batch, args.size, args.seed)
    res = dict(
        args=vars(args),
        machine=f'{platform.machine()}, {os.cpu_count()} CPU cores, torch '
        f'{torch.__version__}' +
        (f', {torch.cuda.get_device_name()}' if args.device.startswith('cuda') else ', no GPU'))
    res['train_step'] = bench_train_steps(args, data)
    res['strong_aug'] = bench_strong_aug(args)
    res['inference'] = bench_inference(args, data)
    res['dataloader'] = bench_dataloader(args, res['train_step']['densefixmatch']['total'])
    res['ema'] = bench_ema(args)
    res['anchors'] = bench_anchors(args)
    res['wall_time_s'] = time.time() - start
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'benchmark.json'), 'w') as f:
        json.dump(res, f, indent=2)
    text = markdown(res) + f"\n\nWall time of the benchmark: {res['wall_time_s']:.0f} s.\n"
    with open(osp.join(args.out, 'benchmark.md'), 'w') as f:
        f.write(text)
    print(text)
    return res


if __name__ == '__main__':
    main()
