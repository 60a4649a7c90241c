"""Detection losses normalised as Eq. 3 and Eq. 4 write them: per image over its positives, then over the images.

``1/|B_t| sum_i L(...)``: each image's focal and GIoU sums over its own positive anchors (at least 1), then the
mean over the images of B^l_det (supervised) or B^u_det (unsupervised, where an image without pseudo boxes adds 0
and still counts). Checked against an independent computation -- each image alone with mmdet's pooled normaliser,
which for one image is exactly that image's mean -- and against the pooled option, which must differ when images
hold very different numbers of boxes.
"""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

import mtssl_mm  # noqa: F401
from fixtures import TINY_CONFIG, unpadded_meta

H, W = 64, 96


def det_tasks():
    """The tiny config's detection task with each normaliser, the same weights."""
    torch.manual_seed(0)
    cfg = Config.fromfile(TINY_CONFIG).model
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    per_image = model.tasks['det']
    assert per_image.loss_normaliser == 'per_image'  # the configs' default
    pooled = copy.deepcopy(per_image)
    pooled.loss_normaliser = 'pooled'
    return model, per_image, pooled


def sample(n_boxes, seed):
    g = torch.Generator().manual_seed(seed)
    ds = DetDataSample(metainfo=unpadded_meta(H, W, labeled_tasks=('det', )))
    xy = torch.rand(n_boxes, 2, generator=g) * torch.tensor([W * 0.7, H * 0.7])
    wh = torch.rand(n_boxes, 2, generator=g) * 16 + 8
    ds.gt_instances = InstanceData(
        bboxes=torch.cat([xy, xy + wh], 1), labels=torch.randint(0, 8, (n_boxes, ), generator=g))
    ds.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    return ds


def mean_losses(task_loss):
    """``{name: sum of the per-level sums / normaliser}`` of a TaskLoss (no process group: W = 1)."""
    return {k: sum(v) / task_loss.normaliser.clamp(min=1) for k, v in task_loss.sums.items() if 'loss' in k}


def test_supervised_loss_is_the_mean_of_per_image_losses():
    model, per_image, pooled = det_tasks()
    samples = [sample(1, 0), sample(12, 1), sample(3, 2)]  # 1 object against 12
    x = torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        outs = per_image(model.extract_feat(x))
        got = per_image.loss(outs, samples)
        assert got.normaliser.item() == 3  # |B^l_det|
        got = mean_losses(got)
        alone = []
        for i in range(3):  # each image alone, mmdet's pooled normaliser = that image's positives (at least 1)
            one = tuple([lvl[i:i + 1] for lvl in level] for level in outs)
            alone.append(mean_losses(pooled.loss(one, [samples[i]])))
        batch_pooled = mean_losses(pooled.loss(outs, samples))
    for key in ('loss_cls', 'loss_bbox'):
        want = sum(a[key] for a in alone) / 3
        assert torch.allclose(got[key], want, rtol=1e-5), key
    # the pooled option is the other form: the 12-box image's boxes weigh 12 times the single box. (At the
    # initialisation the classification loss per positive anchor is about the same in every image, so only the box
    # loss tells the two apart here.)
    want = sum(a['loss_bbox'] for a in alone) / 3
    assert (batch_pooled['loss_bbox'] - want).abs() > 0.01 * want


def test_unsupervised_loss_counts_images_without_pseudo_boxes():
    model, per_image, pooled = det_tasks()
    samples = [sample(4, 0), sample(1, 1)]
    pseudo = [
        InstanceData(
            bboxes=samples[0].gt_instances.bboxes, labels=samples[0].gt_instances.labels, scores=torch.ones(4)),
        InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long), scores=torch.zeros(0))
    ]
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        outs = per_image(model.extract_feat(x))
        both = per_image.unsup_loss(outs, samples, pseudo)
        first = tuple([lvl[:1] for lvl in level] for level in outs)
        alone = mean_losses(pooled.unsup_loss(first, samples[:1], pseudo[:1]))  # its pseudo-box anchors
        pooled_both = pooled.unsup_loss(outs, samples, pseudo)
    assert both.normaliser.item() == 2, '|B^u_det| counts the image without pseudo boxes'
    got = mean_losses(both)
    for key in ('loss_cls', 'loss_bbox'):
        assert alone[key] > 0
        assert torch.allclose(got[key], alone[key] / 2, rtol=1e-5), key
        # pooled: the batch whose only pseudo boxes sit in one image gives them the full weight
        assert torch.allclose(mean_losses(pooled_both)[key], alone[key], rtol=1e-5), key


def test_unknown_normaliser_is_an_error():
    cfg = Config.fromfile(TINY_CONFIG).model
    cfg.tasks.det.loss_normaliser = 'per_box'
    with pytest.raises(ValueError, match="loss_normaliser must be one of \\('per_image', 'pooled'\\)"):
        MODELS.build(cfg)
