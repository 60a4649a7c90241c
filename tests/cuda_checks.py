"""The bodies of the CUDA tests (tests/test_cuda.py), each taking the device(s) it runs on.

tests/test_cuda.py runs them on ``cuda`` (against ``cpu``) where a GPU is; tests/test_cuda_checks.py runs the
same code on ``cpu`` against ``cpu`` everywhere, so that the comparisons themselves are exercised on machines
without one. Tolerances are stated once, here.
"""
import copy
import os.path as osp
import random
from contextlib import contextmanager
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.distributed as dist
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData, PixelData

import mtssl_mm  # noqa: F401
from fixtures import REPO, TINY_CONFIG, write_dataset
from toy_data import make_image

DENSE_TINY = osp.join(REPO, 'configs', 'demo', 'densefixmatch_tiny.py')

# StrongAugment, same draws on two devices: float32 images within IMG_ATOL. A quantising op (Posterize, Solarize,
# Equalize) drawn after an op that rounds differently on the GPU (the means of Contrast and Saturation, the 3x3
# kernel of Sharpness) can move a value across a level: with two ops per sample, at most IMG_MAX_FRACTION of the
# values may differ by more. With one op per sample, none may. Matrices are equal (composed on the host).
IMG_ATOL = 1e-4
IMG_MAX_FRACTION = 1e-4
# predict, fixed model, same images: boxes (pixels) and scores of matched detections within these; per image at
# most BOX_MAX_UNMATCHED detections of either device without a match (a score at the 0.05 threshold or an IoU at
# the NMS threshold can fall on either side of a rounding difference); seg maps equal except SEG_MAX_FRACTION.
BOX_ATOL = 1e-2
SCORE_ATOL = 1e-4
BOX_MAX_UNMATCHED = 1
SEG_MAX_FRACTION = 1e-3


@contextmanager
def exact_float32():
    """Full float32 convolutions and matrix products on CUDA: cuDNN's default lets convolutions use TF32 (10-bit
    mantissa), which would differ from the CPU by ~1e-3, not by rounding."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


# ------------------------------------------------------------------------------------------ strong augmentation
def uint8_images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """``(n, 3, h, w)`` float32 on the 1/255 grid of decoded images: half street scenes, half noise."""
    rng = np.random.default_rng(seed)
    imgs = []
    for i in range(n):
        if i % 2 == 0:
            img, _ = make_image(rng, h, w, [[w * 0.1, h * 0.5, w * 0.4, h * 0.8], [w * 0.6, h * 0.4, w * 0.9, h * 0.7]])
        else:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        imgs.append(torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1))
    return torch.stack(imgs).float() / 255


def strong_augment_pair(aug_cfg: dict,
                        devices: Sequence[str],
                        n: int = 8,
                        h: int = 96,
                        w: int = 128,
                        seed: int = 0) -> Dict[str, tuple]:
    """One ``StrongAugment`` (built from ``aug_cfg``), one draw of ``sample_params``, applied with
    ``apply_params`` to the same images on each device; ``{device: (images, matrices)}`` on the CPU."""
    aug = MODELS.build(aug_cfg)
    imgs = uint8_images(n, h, w, seed)
    params = aug.sample_params(n, h, w, device='cpu', generator=torch.Generator().manual_seed(seed))
    out = {}
    for device in devices:
        with exact_float32():
            strong, matrices = copy.deepcopy(aug).to(device).apply_params(imgs.to(device), params)
        out[device] = (strong.cpu(), matrices.cpu())
    return out


def image_difference(a: torch.Tensor, b: torch.Tensor) -> Dict[str, float]:
    diff = (a - b).abs()
    return dict(max_abs=float(diff.max()), fraction_over_atol=float((diff > IMG_ATOL).float().mean()))


# --------------------------------------------------------------------------------------- Dense FixMatch, AMP
def toy_batch(root: str, config: str = DENSE_TINY, seed: int = 0) -> dict:
    """A loader batch of the tiny config's train pipeline on a generated data set written under ``root``:
    one image labeled for both tasks, one for det, one for seg, one for none."""
    write_dataset(root, [('det', 'seg'), ('det', ), ('seg', ), ()], split='train', seed=seed)
    ds_cfg = Config.fromfile(config).train_dataloader.dataset
    ds_cfg.update(data_root=root, filter_cfg=None)
    dataset = DATASETS.build(ds_cfg)
    samples = []
    for i in range(len(dataset)):
        np.random.seed(seed + i)  # the pipeline's random resize, crop and flip
        random.seed(seed + i)
        samples.append(dataset[i])
    return pseudo_collate(samples)


def dense_fixmatch_amp_step(device: str, dtype: torch.dtype, batch: dict) -> dict:
    """One Dense FixMatch training step (configs/demo/densefixmatch_tiny.py) under ``torch.autocast(dtype)``:
    data preprocessor, teacher, pseudo-labels, strong views, student losses, backward.

    The teacher is made confident (detection bias 4) so that sigma_det keeps boxes and the box warps run.

    Returns:
        dict: ``losses`` (name -> float), ``pseudo_boxes_per_img``, ``params`` (trainable student parameters),
        ``no_grad`` and ``non_finite_grad`` (names of those without a gradient / with a non-finite one).
    """
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(DENSE_TINY).model)
    model.init_weights()
    model = model.to(device).train()
    with torch.no_grad():
        model.teacher.tasks['det'].head.retina_cls.bias.fill_(4.0)
    torch.manual_seed(1)  # the strong augmentation's draws
    with torch.autocast(torch.device(device).type, dtype=dtype):
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    loss.backward()
    named = [(n, p) for n, p in model.student.named_parameters() if p.requires_grad]
    return dict(
        losses={
            k: float(torch.as_tensor(v).detach())
            for k, v in log_vars.items()
        },
        pseudo_boxes_per_img=float(log_vars['det.pseudo_boxes_per_img']),
        params=len(named),
        no_grad=[n for n, p in named if p.grad is None],
        non_finite_grad=[n for n, p in named if p.grad is not None and not torch.isfinite(p.grad).all()])


# -------------------------------------------------------------------------------------------------- predict
def fixed_model():
    """The tiny supervised model, seeded, with spread detection scores and seg logits (a random head gives
    near-equal scores under the 0.05 threshold), in eval mode, on the CPU."""
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY_CONFIG).model)
    model.init_weights()
    g = torch.Generator().manual_seed(1)
    head = model.tasks['det'].head
    with torch.no_grad():
        for conv in list(head.cls_convs) + list(head.reg_convs):
            conv.conv.weight.normal_(0, 0.1, generator=g)
        head.retina_cls.weight.normal_(0, 0.1, generator=g)
        head.retina_cls.bias.fill_(-4.0)
        head.retina_reg.weight.normal_(0, 0.02, generator=g)
        model.tasks['seg'].head.conv_seg.weight.normal_(0, 0.5, generator=g)
    return model.eval()


def predict_batch(n: int = 2, h: int = 64, w: int = 128, seed: int = 0) -> dict:
    """``n`` street scenes (BGR uint8, as the loader gives them) with their test-time metainfo."""
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(n):
        img, _ = make_image(rng, h, w, [[10, h // 2, 50, h - 10], [70, h // 3, 110, h - 20]])
        inputs.append(torch.from_numpy(img).permute(2, 0, 1).contiguous())
        samples.append(DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0))))
    return dict(inputs=inputs, data_samples=samples)


def predict_on(model, batch: dict, device: str) -> List[dict]:
    """``test_step`` of a copy of ``model`` on ``device``: per image boxes, scores, labels and seg map (CPU)."""
    model = copy.deepcopy(model).to(device)
    with torch.no_grad(), exact_float32():
        results = model.test_step(copy.deepcopy(batch))
    return [
        dict(
            bboxes=r.pred_instances.bboxes.cpu(),
            scores=r.pred_instances.scores.cpu(),
            labels=r.pred_instances.labels.cpu(),
            seg=r.pred_sem_seg.sem_seg.cpu()) for r in results
    ]


def match_detections(a: dict, b: dict) -> Dict[str, float]:
    """Detections of ``a`` matched to those of ``b`` (same label, every coordinate within BOX_ATOL, score within
    SCORE_ATOL; each used once): counts, unmatched on each side and the largest matched differences."""
    used = torch.zeros(len(b['scores']), dtype=torch.bool)
    box_diff, score_diff, matched = 0.0, 0.0, 0
    for i in range(len(a['scores'])):
        d_box = (b['bboxes'] - a['bboxes'][i]).abs().amax(dim=1) if len(b['scores']) else torch.zeros(0)
        d_score = (b['scores'] - a['scores'][i]).abs()
        ok = (b['labels'] == a['labels'][i]) & (d_box <= BOX_ATOL) & (d_score <= SCORE_ATOL) & ~used
        if ok.any():
            j = int(torch.where(ok, d_box, torch.full_like(d_box, float('inf'))).argmin())
            used[j] = True
            matched += 1
            box_diff, score_diff = max(box_diff, float(d_box[j])), max(score_diff, float(d_score[j]))
    seg_fraction = float((a['seg'] != b['seg']).float().mean())
    return dict(
        count_a=len(a['scores']),
        count_b=len(b['scores']),
        matched=matched,
        unmatched_a=len(a['scores']) - matched,
        unmatched_b=len(b['scores']) - matched,
        max_box_diff=box_diff,
        max_score_diff=score_diff,
        seg_fraction_differing=seg_fraction)


# --------------------------------------------------------------------------------------------------- SyncBN
def sync_bn_step(device: str, backend: str, init_file: str) -> dict:
    """The tiny model converted with ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` under a 1-process group
    (``backend``, file store ``init_file``), wrapped in DDP, one forward + backward in train mode, and an
    ``all_reduce``; the group is destroyed in any case.

    With one process, ``SyncBatchNorm`` takes the plain batch-norm path after its device check (it syncs only
    from 2 ranks, i.e. 2 GPUs); DDP's gradient all-reduce and the explicit one do run on ``backend``.
    """
    dist.init_process_group(backend, init_method=f'file://{init_file}', rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(TINY_CONFIG).model)
        model.init_weights()
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model).to(device).train()
        sync = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
        mean_before = sync[0].running_mean.clone()
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index or 0] if torch.device(device).type == 'cuda' else None)
        x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0)).to(device)
        samples = [sync_bn_sample(i) for i in range(2)]
        losses = ddp(x, [s.to(device) for s in samples], mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        ones = torch.ones(3, device=device)
        dist.all_reduce(ones)
        return dict(
            sync_bn_layers=len(sync),
            loss=float(loss),
            grads_finite=all(g is not None and bool(torch.isfinite(g).all()) for g in grads),
            running_mean_moved=not torch.equal(sync[0].running_mean.cpu(), mean_before.cpu()),
            all_reduce=ones.cpu().tolist())
    finally:
        dist.destroy_process_group()


def sync_bn_sample(seed: int) -> DetDataSample:
    h, w = 64, 96
    ds = DetDataSample(
        metainfo=dict(
            img_shape=(h, w),
            ori_shape=(h, w),
            pad_shape=(h, w),
            batch_input_shape=(h, w),
            scale_factor=(1.0, 1.0),
            labeled_tasks=('det', 'seg')))
    ds.gt_instances = InstanceData(bboxes=torch.tensor([[10., 20., 50., 50.]]), labels=torch.tensor([2]))
    ds.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    g = torch.Generator().manual_seed(seed)
    ds.gt_sem_seg = PixelData(sem_seg=torch.randint(0, 19, (1, h, w), generator=g).to(torch.uint8))
    return ds
