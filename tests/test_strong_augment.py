"""StrongAugment: Table 10 RandAugment, flip, Cutout; per-sample parameters, one warp, matrices checked with OpenCV."""
import math

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from PIL import Image, ImageEnhance, ImageOps

import mtssl_mm.augmentation as aug_pkg
from mtssl_mm.augmentation import GEOMETRIC_OPS, PHOTOMETRIC_OPS, TABLE10_MAGNITUDES, StrongAugment
from mtssl_mm.augmentation import strong_augment as sa
from mtssl_mm.augmentation import strong_ops, strong_params, warp_boxes, warp_boxes_batch, warp_seg_maps

H, W = 48, 64


def smooth_images(b, h=H, w=W, seed=0):
    """(b, 3, h, w) smooth images in [0.05, 0.95] (bilinear warps of them are well defined)."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(b, 3, 1, 1, generator=g) * 6.28
    ys = torch.arange(h).view(1, 1, h, 1).float()
    xs = torch.arange(w).view(1, 1, 1, w).float()
    return 0.5 + 0.45 * torch.sin(xs / 5.0 + phase) * torch.cos(ys / 7.0 - phase)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def fixed_params(op, magnitude, b=2, hflip=False):
    """Parameters for a one-op StrongAugment: every sample applies ``op`` with ``magnitude`` (then flips when
    ``hflip``, a bool or ``(b,)`` bools), no Cutout."""
    return dict(
        op_idx=torch.zeros(b, 1, dtype=torch.long),
        magnitudes=torch.full((b, 1), float(magnitude)),
        cutout=torch.zeros(b, 4, dtype=torch.long),
        cutout_frac=torch.zeros(b),
        hflip=torch.as_tensor(hflip, dtype=torch.bool).expand(b).clone())


#: Horizontal flip in pixel-index coordinates, x' = W - 1 - x.
FLIP = torch.tensor([[-1., 0., W - 1.], [0., 1., 0.], [0., 0., 1.]], dtype=torch.float64)

# ------------------------------------------------------------------------------------------------ geometry ----


def valid_interior(m, h=H, w=W, band=2):
    """Pixels of the strong view that come from inside the weak view, ``band`` px away from its border."""
    ones = np.ones((h, w), np.float32)
    inside = cv2.warpAffine(ones, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderValue=0) > 0.999
    return cv2.erode(inside.astype(np.uint8), np.ones((2 * band + 1, 2 * band + 1), np.uint8)).astype(bool)


def test_matrices_reproduce_the_image_warp_with_opencv():
    imgs = smooth_images(12)
    aug = StrongAugment(ops=GEOMETRIC_OPS, cutout=None)
    strong, mats = aug(imgs, generator=gen(1))
    assert mats.dtype == torch.float32 and mats.shape == (12, 3, 3)
    assert not torch.allclose(mats, torch.eye(3).expand(12, 3, 3))
    for img, out, m in zip(imgs, strong, mats.double().numpy()):
        ref = cv2.warpAffine(
            img.permute(1, 2, 0).numpy(),
            m[:2], (W, H),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.5, 0.5, 0.5))
        interior = valid_interior(m)
        assert interior.mean() > 0.2
        diff = np.abs(out.permute(1, 2, 0).numpy() - ref)[interior]
        assert diff.max() < 0.02  # OpenCV interpolates with 5-bit weights
        outside = ~cv2.dilate(valid_interior(m, band=0).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        np.testing.assert_allclose(out.permute(1, 2, 0).numpy()[outside], 0.5, atol=1e-5)  # padded with fill


def op_matrix(op, magnitude):
    aug = StrongAugment(num_ops=1, ops=[op], cutout=None)
    return aug.compute_matrices(fixed_params(op, magnitude, b=1), H, W)[0].double()


def test_geometric_op_matrices_follow_table10_units_and_the_centre():
    cx, cy = (W - 1) / 2, (H - 1) / 2
    centre = torch.tensor([cx, cy, 1.0], dtype=torch.float64)
    from kornia.geometry.transform import get_rotation_matrix2d
    kornia_rot = get_rotation_matrix2d(torch.tensor([[cx, cy]]), torch.tensor([30.0]), torch.ones(1, 2))[0]
    torch.testing.assert_close(op_matrix('Rotate', 30.0)[:2].float(), kornia_rot, atol=1e-5, rtol=0)
    for op, mag in [('Rotate', -30.0), ('ShearX', 17.0), ('ShearY', -17.0)]:
        torch.testing.assert_close(op_matrix(op, mag) @ centre, centre)  # about the image centre
    assert math.isclose(op_matrix('ShearX', 17.0)[0, 1].item(), math.tan(math.radians(17)), rel_tol=1e-6)
    assert math.isclose(op_matrix('ShearY', 17.0)[1, 0].item(), math.tan(math.radians(17)), rel_tol=1e-6)
    assert math.isclose(op_matrix('TranslateX', 0.15)[0, 2].item(), 0.15 * W, rel_tol=1e-6)
    assert math.isclose(op_matrix('TranslateY', -0.15)[1, 2].item(), -0.15 * H, rel_tol=1e-6)
    flip = strong_ops.hflip_matrix(torch.zeros(1), H, W)[0].double()
    torch.testing.assert_close(flip, FLIP)
    torch.testing.assert_close(flip @ centre, centre)


def test_two_geometric_ops_compose_in_drawn_order_then_the_flip():
    aug = StrongAugment(num_ops=2, ops=['TranslateX', 'Rotate'], cutout=None)
    params = dict(
        op_idx=torch.tensor([[0, 1], [1, 0], [0, 1], [1, 0]]),
        magnitudes=torch.tensor([[0.1, 20.0], [20.0, 0.1], [0.1, 20.0], [20.0, 0.1]]),
        cutout=torch.zeros(4, 4, dtype=torch.long),
        cutout_frac=torch.zeros(4),
        hflip=torch.tensor([False, False, True, True]))
    mats = aug.compute_matrices(params, H, W).double()
    t, r = op_matrix('TranslateX', 0.1), op_matrix('Rotate', 20.0)
    torch.testing.assert_close(mats[0], r @ t, atol=1e-4, rtol=0)  # slot 0 first
    torch.testing.assert_close(mats[1], t @ r, atol=1e-4, rtol=0)
    torch.testing.assert_close(mats[2], FLIP @ r @ t, atol=1e-4, rtol=0)  # the flip after both drawn ops
    torch.testing.assert_close(mats[3], FLIP @ t @ r, atol=1e-4, rtol=0)
    assert not torch.allclose(mats[2], r @ t @ FLIP, atol=1.0)  # (the flip does not commute with them)
    del params['hflip']  # parameters without the entry: no flip
    torch.testing.assert_close(aug.compute_matrices(params, H, W).double()[2:], mats[:2])


def test_box_warp_agrees_with_the_image_warp():
    """A bright rectangle's extent in the strong image is the box warped with the returned matrix."""
    b = 16
    boxes = torch.tensor([[10., 8., 30., 22.], [40., 20., 61., 47.]]).repeat(b // 2, 1).view(b, 1, 4)
    imgs = torch.zeros(b, 3, H, W)
    for i, box in enumerate(boxes[:, 0].long()):
        imgs[i, :, box[1]:box[3], box[0]:box[2]] = 1.0
    for ops, tol in [(['TranslateX', 'TranslateY'], 1.0), (['Rotate', 'ShearX'], 1.5)]:
        strong, mats = StrongAugment(ops=ops, cutout=None, fill=0.0)(imgs, generator=gen(3))
        flipped = (mats[:, 0, 0] < 0).sum().item()
        assert 0 < flipped < b  # the boxes follow the flip too (hflip_prob 0.5)
        warped, keep = warp_boxes_batch(list(boxes), mats, (H, W), min_size=2.0)
        for out, wb, k in zip(strong, warped, keep):
            ys, xs = torch.nonzero(out[0] > 0.5, as_tuple=True)
            if len(xs) == 0:
                assert not k.any()
                continue
            seen = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            if tol == 1.0:
                torch.testing.assert_close(wb[0], seen, atol=tol, rtol=0)
            else:  # rotated: the enclosing box contains what is seen
                assert (wb[0, :2] <= seen[:2] + 0.5).all() and (wb[0, 2:] >= seen[2:] - 0.5).all()


# ---------------------------------------------------------------------------------------- sampling ----


def test_table10_ranges():
    assert set(PHOTOMETRIC_OPS) | set(GEOMETRIC_OPS) == set(TABLE10_MAGNITUDES) and len(TABLE10_MAGNITUDES) == 14
    assert TABLE10_MAGNITUDES['Solarize'] == (0.1, 1.0) and TABLE10_MAGNITUDES['Posterize'] == (4, 8)
    for op in ('Saturation', 'Contrast', 'Brightness', 'Sharpness'):
        assert TABLE10_MAGNITUDES[op] == (0.1, 1.9)
    assert TABLE10_MAGNITUDES['ShearX'] == TABLE10_MAGNITUDES['ShearY'] == (-17.0, 17.0)
    assert TABLE10_MAGNITUDES['TranslateX'] == TABLE10_MAGNITUDES['TranslateY'] == (-0.15, 0.15)
    assert TABLE10_MAGNITUDES['Rotate'] == (-30.0, 30.0)


def test_sampled_magnitudes_cover_each_ops_range():
    aug = StrongAugment(op_draw='sample')
    n = 6000
    p = aug.sample_params(n, H, W, generator=gen(0))
    op_idx, mags = p['op_idx'], p['magnitudes']
    assert op_idx.shape == (n, 2) and mags.shape == (n, 2) and mags.dtype == torch.float32
    assert (op_idx[:, 0] != op_idx[:, 1]).all()  # two distinct ops per sample
    freq = torch.bincount(op_idx.flatten(), minlength=14).float() / (2 * n)
    assert ((freq - 1 / 14).abs() < 0.015).all()  # uniform over the 14 ops
    for k, op in enumerate(aug.ops):
        m = mags[op_idx == k]
        rng = TABLE10_MAGNITUDES[op]
        if rng is None:
            assert (m == 0).all()
            continue
        low, high = rng
        assert m.min() >= low and m.max() <= high, op
        if op == 'Posterize':
            assert set(m.tolist()) == {4.0, 5.0, 6.0, 7.0, 8.0}
        else:
            span = high - low
            assert m.min() < low + 0.05 * span and m.max() > high - 0.05 * span, op


def test_per_batch_draw_gives_every_sample_the_same_ops_and_its_own_magnitudes():
    """op_draw='batch' (the default, the authors' code and Table 10's "# augmentations per batch 2"): one draw of
    the 2 ops per call, uniform over the pool across calls; magnitudes, flips and Cutout per sample."""
    aug = StrongAugment()
    assert aug.op_draw == 'batch' and 'op_draw=batch' in repr(aug)
    g = gen(3)
    firsts = []
    for _ in range(3000):
        p = aug.sample_params(4, H, W, generator=g)
        assert (p['op_idx'] == p['op_idx'][:1]).all() and p['op_idx'][0, 0] != p['op_idx'][0, 1]
        firsts.append(p['op_idx'][0])
    freq = torch.bincount(torch.stack(firsts).flatten(), minlength=14).float() / 6000
    assert ((freq - 1 / 14).abs() < 0.02).all()
    p = aug.sample_params(32, H, W, generator=gen(5))
    assert len({tuple(r) for r in p['magnitudes'].tolist()}) > 16 or p['magnitudes'].abs().sum() == 0
    assert len(set(p['cutout'][:, 0].tolist())) > 5 and 0 < p['hflip'].sum() < 32


def test_each_sample_draws_its_own_ops_and_magnitudes():
    aug = StrongAugment(op_draw='sample')
    b = 32
    p = aug.sample_params(b, H, W, generator=gen(5))
    assert len({tuple(r) for r in p['op_idx'].tolist()}) > b // 2
    assert len(set(p['cutout'].tolist()[i][0] for i in range(b))) > 5
    imgs = smooth_images(1).expand(b, 3, H, W).contiguous()  # one image, b times
    strong, mats = aug.apply_params(imgs, p)
    flat = strong.flatten(1)
    distinct = len({tuple(row) for row in (flat * 1e4).round().long()[:, ::97].tolist()})
    assert distinct == b
    assert len({tuple(m) for m in mats.flatten(1).tolist()}) > 5


def test_fixmatch_star_keeps_the_geometry():
    star = StrongAugment(geometric=False)
    assert set(star.ops) == set(PHOTOMETRIC_OPS)
    _, mats = star(smooth_images(64), generator=gen(0))
    assert torch.equal(mats, torch.eye(3).expand(64, 3, 3))
    # only geometric ops allowed: FixMatch* removes them all, so nothing moves
    geo_only = StrongAugment(geometric=False, ops=GEOMETRIC_OPS, cutout=None)
    imgs = smooth_images(8)
    strong, mats = geo_only(imgs, generator=gen(0))
    assert torch.equal(strong, imgs) and torch.equal(mats, torch.eye(3).expand(8, 3, 3))
    dense = StrongAugment(geometric=True, ops=GEOMETRIC_OPS, cutout=None)
    strong, mats = dense(imgs, generator=gen(0))
    assert not torch.equal(strong, imgs)


def test_cutout_area_is_10_to_30_percent_and_filled():
    for h, w in [(H, W), (37, 101), (800, 800)]:
        aug = StrongAugment(ops=[], cutout=(0.1, 0.3), fill=0.5, hflip_prob=0.0)  # Cutout alone
        b = 64 if h < 100 else 4
        imgs = 0.75 + 0.2 * torch.rand(b, 3, h, w, generator=gen(0))  # no pixel equals the fill
        p = aug.sample_params(b, h, w, generator=gen(1))
        strong, mats = aug.apply_params(imgs, p)
        filled = (strong == 0.5).all(dim=1)
        frac = filled.flatten(1).float().mean(1)
        assert (frac >= 0.1).all() and (frac <= 0.3).all(), (h, w, frac)
        x1, y1, x2, y2 = p['cutout'].T
        torch.testing.assert_close(frac, ((x2 - x1) * (y2 - y1)).float() / (h * w))
        assert torch.equal(strong[~filled[:, None].expand_as(strong)], imgs[~filled[:, None].expand_as(imgs)])
        assert torch.equal(mats, torch.eye(3).expand(b, 3, 3))  # Cutout moves no labels
    drawn = StrongAugment().sample_params(2000, H, W, generator=gen(2))['cutout_frac']
    assert drawn.min() < 0.11 and drawn.max() > 0.29  # the drawn fractions span the range


# ------------------------------------------------------------------------------------- horizontal flip ----
# The authors' BatchRandAugment: RandomCrop -> 2 ops from the pool (no flip in it) -> RandomHorizontalFlip(0.5)
# -> Cutout. Here (Dense FixMatch only): the flip is drawn per sample with hflip_prob and composed after the
# drawn ops.


def test_pool_is_14_ops_without_the_flip():
    dense = StrongAugment(geometric=True)
    assert dense.ops == PHOTOMETRIC_OPS + GEOMETRIC_OPS and len(dense.ops) == 14 and 'HFlip' not in dense.ops
    assert len(PHOTOMETRIC_OPS) == 9 and len(GEOMETRIC_OPS) == 5 and 'HFlip' not in TABLE10_MAGNITUDES
    assert dense.num_ops == 2 and dense.hflip_prob == 0.5
    assert 'hflip_prob=0.5' in repr(dense) and 'HFlip' not in repr(dense)
    drawn = StrongAugment(op_draw='sample').sample_params(2000, H, W, generator=gen(0))['op_idx']
    assert set(drawn.unique().tolist()) == set(range(14))
    star = StrongAugment(geometric=False)
    assert star.ops == PHOTOMETRIC_OPS and star.hflip_prob == 0.0 and 'hflip_prob=0.0' in repr(star)


def test_dense_fixmatch_configs_get_the_flip_from_geometric_true_alone():
    from mmengine.config import Config

    from fixtures import REPO
    for leaf, prob, n_ops in [('bdd100k/densefixmatch_explicit.py', 0.5, 14), ('bdd100k/fixmatch_explicit.py', 0.0, 9),
                              ('demo/densefixmatch_tiny.py', 0.5, 14), ('demo/fixmatch_tiny.py', 0.0, 9)]:
        aug = MODELS.build(Config.fromfile(f'{REPO}/configs/{leaf}').model.strong_aug)
        assert aug.hflip_prob == prob and len(aug.ops) == n_ops and 'HFlip' not in aug.ops, leaf


def test_each_sample_flips_with_hflip_prob_independently_of_its_ops():
    n = 20000
    p = StrongAugment(op_draw='sample').sample_params(n, H, W, generator=gen(1))
    hflip = p['hflip']
    assert hflip.dtype == torch.bool and hflip.shape == (n, )
    assert abs(hflip.float().mean().item() - 0.5) < 0.02
    for k in range(14):  # ~1430 samples per op: the rate does not depend on the op drawn
        assert abs(hflip[p['op_idx'][:, 0] == k].float().mean().item() - 0.5) < 0.06, k
    quarter = StrongAugment(hflip_prob=0.25, op_draw='sample').sample_params(n, H, W, generator=gen(1))['hflip']
    assert abs(quarter.float().mean().item() - 0.25) < 0.02
    # the flip is drawn last: with the same seed, everything else is what it is without the flip
    none = StrongAugment(hflip_prob=0.0, op_draw='sample').sample_params(n, H, W, generator=gen(1))
    assert not none['hflip'].any()
    for key in ('op_idx', 'magnitudes', 'cutout', 'cutout_frac'):
        assert torch.equal(none[key], p[key]), key


def test_flip_is_composed_after_the_drawn_ops_and_matches_an_actually_flipped_image_and_label():
    b = 48
    imgs = smooth_images(b)
    labels = torch.from_numpy(
        np.stack([
            cv2.resize(
                np.random.default_rng(i).integers(0, 19, (3, 4), dtype=np.uint8), (W, H),
                interpolation=cv2.INTER_NEAREST) for i in range(b)
        ]))
    aug = StrongAugment(ops=GEOMETRIC_OPS, cutout=None)  # affine ops only: the strong image is its geometry
    strong, mats = aug(imgs, generator=gen(2))
    p = aug.sample_params(b, H, W, generator=gen(2))  # the draws forward made
    fl = p['hflip']
    assert 0.25 * b < fl.sum() < 0.75 * b
    drawn = aug.compute_matrices(dict(p, hflip=torch.zeros(b, dtype=torch.bool)), H, W)  # without the flip
    assert torch.equal(mats[~fl], drawn[~fl])
    torch.testing.assert_close(mats[fl].double(), FLIP @ drawn[fl].double(), atol=1e-4, rtol=0)  # flip last
    assert not torch.allclose(mats[fl].double(), drawn[fl].double() @ FLIP, atol=0.5)  # not flip first
    warped_labels = warp_seg_maps(labels, mats)
    for i in fl.nonzero().flatten().tolist():
        g = drawn[i].double().numpy()
        # the weak view warped by the drawn ops with OpenCV, then actually mirrored
        ref = cv2.warpAffine(
            imgs[i].permute(1, 2, 0).numpy(),
            g[:2], (W, H),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.5, 0.5, 0.5))[:, ::-1]
        interior = valid_interior(g)[:, ::-1]
        assert interior.mean() > 0.2
        assert np.abs(strong[i].permute(1, 2, 0).numpy() - ref)[interior].max() < 0.02
        ref_label = cv2.warpAffine(
            labels[i].numpy(), g[:2], (W, H), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
            borderValue=255)[:, ::-1]
        kernel = np.ones((3, 3), np.uint8)
        stable = cv2.dilate(ref_label, kernel) == cv2.erode(ref_label, kernel)
        assert stable.mean() > 0.3
        np.testing.assert_array_equal(warped_labels[i].numpy()[stable], ref_label[stable])
        # a weak-view point lands where the drawn ops put it, mirrored: x' = W - 1 - x
        pt = torch.tensor([11.0, 17.0, 1.0], dtype=torch.float64)
        x, y, _ = drawn[i].double() @ pt
        torch.testing.assert_close(
            mats[i].double() @ pt, torch.stack([W - 1 - x, y, torch.ones(())]).double(), atol=1e-4, rtol=0)


def test_flip_comes_after_the_photometric_ops_and_before_cutout():
    b = 32
    imgs = smooth_images(b)
    aug = StrongAugment(ops=PHOTOMETRIC_OPS, fill=0.5)
    p = aug.sample_params(b, H, W, generator=gen(3))
    strong, mats = aug.apply_params(imgs, p)
    fl = p['hflip']
    assert 0 < fl.sum() < b
    # photometric pool: each matrix is exactly the identity or exactly the flip
    assert torch.equal(mats[fl], FLIP.float().expand(int(fl.sum()), 3, 3))
    assert torch.equal(mats[~fl], torch.eye(3).expand(int((~fl).sum()), 3, 3))
    # the same draws without flip and without Cutout, mirrored by hand
    plain, _ = StrongAugment(ops=PHOTOMETRIC_OPS, cutout=None).apply_params(imgs, dict(p, hflip=torch.zeros_like(fl)))
    for i in range(b):
        x1, y1, x2, y2 = p['cutout'][i].tolist()
        cut = torch.zeros(H, W, dtype=torch.bool)
        cut[y1:y2, x1:x2] = True
        assert (strong[i][:, cut] == 0.5).all()  # Cutout where it was drawn, in strong-view coordinates: last
        expected = plain[i].flip(-1) if fl[i] else plain[i]
        torch.testing.assert_close(strong[i][:, ~cut], expected[:, ~cut], atol=1e-4, rtol=0)


def test_no_flip_with_hflip_prob_0_or_fixmatch_star():
    imgs = smooth_images(32)
    eye = torch.eye(3).expand(32, 3, 3)
    for aug in (StrongAugment(ops=PHOTOMETRIC_OPS, hflip_prob=0.0), StrongAugment(geometric=False),
                StrongAugment(geometric=False, hflip_prob=1.0)):  # FixMatch* moves no geometry, the flip included
        assert aug.hflip_prob == 0.0
        assert not aug.sample_params(32, H, W, generator=gen(0))['hflip'].any()
        _, mats = aug(imgs, generator=gen(0))
        assert torch.equal(mats, eye)
    _, mats = StrongAugment(ops=PHOTOMETRIC_OPS, hflip_prob=1.0)(imgs, generator=gen(0))
    assert torch.equal(mats, FLIP.float().expand(32, 3, 3))


def test_hflip_is_not_a_pool_op_but_hflip_prob():
    # 'HFlip' (the flip as an op of the pool, before hflip_prob) is gone: naming it is an error that names hflip_prob
    for kwargs in (dict(ops=('HFlip', ), num_ops=1, cutout=None), dict(ops=('Rotate', 'HFlip'), hflip_prob=0.0),
                   dict(ops=('Rotate', 'HFlip'), hflip_prob=0.5), dict(geometric=False, ops=('HFlip', 'Invert'))):
        with pytest.raises(ValueError, match="'HFlip' is not an op of the pool: the horizontal flip is hflip_prob"):
            StrongAugment(**kwargs)
    # what a pool of 'HFlip' alone did, hflip_prob=1.0 does: every sample flipped, nothing else moved
    flip_only = StrongAugment(ops=(), cutout=None, hflip_prob=1.0)
    imgs = smooth_images(4)
    strong, mats = flip_only(imgs, generator=gen(0))
    assert torch.equal(mats, FLIP.float().expand(4, 3, 3))
    torch.testing.assert_close(strong, imgs.flip(-1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r'hflip_prob must be in \[0, 1\]'):
        StrongAugment(hflip_prob=1.5)


# ----------------------------------------------------------------------------------------- photometric ----


def uint8_image():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    img = np.stack([
        128 + 100 * np.sin(xx / 5) + 20 * rng.standard_normal(xx.shape),
        90 + 60 * np.cos(yy / 4) + 10 * rng.standard_normal(xx.shape), 60 + 50 * np.sin((xx + yy) / 7)
    ], -1)
    return img.clip(0, 255).astype(np.uint8)


PIL_REFERENCE = [
    ('AutoContrast', 0.0, lambda im, m: ImageOps.autocontrast(im)),
    ('Equalize', 0.0, lambda im, m: ImageOps.equalize(im)),
    ('Invert', 0.0, lambda im, m: ImageOps.invert(im)),
    ('Solarize', 0.1, lambda im, m: ImageOps.solarize(im, math.ceil(m * 255))),
    ('Solarize', 0.62, lambda im, m: ImageOps.solarize(im, math.ceil(m * 255))),
    ('Posterize', 4, lambda im, m: ImageOps.posterize(im, int(m))),
    ('Posterize', 6, lambda im, m: ImageOps.posterize(im, int(m))),
] + [(op, f, lambda im, m, e=enh: e(im).enhance(m))
     for op, enh in [('Saturation', ImageEnhance.Color), ('Contrast', ImageEnhance.Contrast),
                     ('Brightness', ImageEnhance.Brightness), ('Sharpness', ImageEnhance.Sharpness)]
     for f in (0.1, 0.55, 1.45, 1.9)]


@pytest.mark.parametrize('op,magnitude,reference', PIL_REFERENCE)
def test_photometric_ops_match_pil(op, magnitude, reference):
    """Each op against PIL, the library RandAugment's definitions come from (within 1.5 of 255 levels)."""
    img = uint8_image()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).repeat(2, 1, 1, 1)
    aug = StrongAugment(num_ops=1, ops=[op], cutout=None)
    out, mats = aug.apply_params(x, fixed_params(op, magnitude))
    ref = np.asarray(reference(Image.fromarray(img), magnitude), dtype=np.float64)
    for sample in out:
        np.testing.assert_allclose(sample.permute(1, 2, 0).numpy() * 255, ref, atol=1.5)
    assert torch.equal(mats, torch.eye(3).expand(2, 3, 3))


@pytest.mark.parametrize('op,magnitude', [('Saturation', 1.0), ('Contrast', 1.0), ('Brightness', 1.0),
                                          ('Sharpness', 1.0), ('Posterize', 8), ('Solarize', 1.0), ('Rotate', 0.0),
                                          ('ShearX', 0.0), ('ShearY', 0.0), ('TranslateX', 0.0), ('TranslateY', 0.0)])
def test_identity_magnitudes_leave_the_image_unchanged(op, magnitude):
    imgs = torch.from_numpy(uint8_image()).permute(2, 0, 1)[None].float().div(255).repeat(2, 1, 1, 1).clamp(max=0.99)
    aug = StrongAugment(num_ops=1, ops=[op], cutout=None)
    out, mats = aug.apply_params(imgs, fixed_params(op, magnitude))
    torch.testing.assert_close(out, imgs, atol=1e-6, rtol=0)
    torch.testing.assert_close(mats, torch.eye(3).expand(2, 3, 3), atol=1e-6, rtol=0)


def test_per_sample_magnitudes_in_one_sub_batch():
    """Samples that drew the same op with different magnitudes are each transformed with their own."""
    imgs = smooth_images(1).repeat(3, 1, 1, 1)
    aug = StrongAugment(num_ops=1, ops=['Brightness'], cutout=None)
    params = fixed_params('Brightness', 1.0, b=3)
    params['magnitudes'] = torch.tensor([[0.5], [1.0], [1.5]])
    out, _ = aug.apply_params(imgs, params)
    for i, f in enumerate([0.5, 1.0, 1.5]):
        torch.testing.assert_close(out[i], (imgs[i] * f).clamp(0, 1))


# ----------------------------------------------------------------------------------------- mechanics ----


def test_one_warp_call_per_forward(monkeypatch):
    calls = []
    real = sa.warp_affine

    def counting(src, *args, **kwargs):
        calls.append(src.shape[0])
        return real(src, *args, **kwargs)

    monkeypatch.setattr(sa, 'warp_affine', counting)
    for b in (4, 32):
        calls.clear()
        _, mats = StrongAugment()(smooth_images(b), generator=gen(b))
        moved = int((mats != torch.eye(3)).flatten(1).any(1).sum())
        assert calls == [moved]  # one batched call, over the samples that drew a geometric op
    calls.clear()
    StrongAugment(geometric=False)(smooth_images(16), generator=gen(0))
    assert calls == []


def test_amp_and_half_precision_inputs():
    imgs = smooth_images(6)
    ref, ref_mats = StrongAugment()(imgs, generator=gen(4))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, mats = StrongAugment()(imgs.bfloat16(), generator=gen(4))
    assert out.dtype == torch.bfloat16 and mats.dtype == torch.float32 and torch.isfinite(out.float()).all()
    assert torch.equal(mats, ref_mats)
    assert (out.float() - ref).abs().mean() < 0.03
    out16, _ = StrongAugment()(imgs.half(), generator=gen(4))
    assert out16.dtype == torch.float16 and torch.isfinite(out16.float()).all()
    assert (out16.float() - ref).abs().mean() < 0.03


def test_reproducible_and_input_untouched():
    imgs = smooth_images(8)
    before = imgs.clone()
    aug = StrongAugment()
    a, ma = aug(imgs, generator=gen(7))
    b, mb = aug(imgs, generator=gen(7))
    c, _ = aug(imgs, generator=gen(8))
    assert torch.equal(a, b) and torch.equal(ma, mb) and not torch.equal(a, c)
    assert torch.equal(imgs, before)
    assert a.shape == imgs.shape and a.dtype == imgs.dtype and a.min() >= 0 and a.max() <= 1


def test_built_from_the_registry_and_validates_arguments():
    aug = MODELS.build(dict(type='StrongAugment', geometric=False, cutout=None))
    assert isinstance(aug, aug_pkg.StrongAugment) and aug.cutout is None
    with pytest.raises(ValueError, match='unknown ops'):
        StrongAugment(ops=['Identity'])
    with pytest.raises(ValueError, match='cutout'):
        StrongAugment(cutout=(0.3, 0.1))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        StrongAugment()(torch.rand(2, 1, 8, 8))
    narrowed = StrongAugment(num_ops=1, ops=['Rotate'], magnitudes=dict(Rotate=(5.0, 6.0)))
    mags = narrowed.sample_params(200, H, W, generator=gen(0))['magnitudes']
    assert mags.min() >= 5.0 and mags.max() <= 6.0


def test_warp_boxes_with_strong_matrices_single_and_batch_agree():
    aug = StrongAugment(ops=GEOMETRIC_OPS, cutout=None)
    _, mats = aug(smooth_images(3), generator=gen(9))
    boxes = [torch.tensor([[5., 5., 20., 30.], [30., 10., 60., 40.]])] * 3
    batch, keep = warp_boxes_batch(boxes, mats, (H, W))
    for bx, m, wb, k in zip(boxes, mats, batch, keep):
        single, single_keep = warp_boxes(bx, m, (H, W))
        assert torch.equal(single, wb) and torch.equal(single_keep, k)


def test_module_apply_and_device_moves_still_work():
    """``nn.Module.apply`` must not be shadowed: mmengine moves models to a device through it."""
    aug = StrongAugment()
    seen = []
    aug.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ['StrongAugment']


def test_image_path_reads_no_device_value():
    """No host sync: every data-dependent choice is taken from the host-side parameters.

    A ``meta`` tensor has shapes but no values, so any read of a device value (``nonzero``, ``item``, ``bool``)
    raises; the whole augmentation must still run, for both pools of ops.
    """
    for geometric, hflip_prob in ((True, None), (True, 1.0), (False, None)):
        imgs = torch.empty(16, 3, 24, 40, device='meta')
        aug = StrongAugment(geometric=geometric, hflip_prob=hflip_prob)
        out, mats = aug(imgs, generator=gen(3))
        assert out.device.type == 'meta' and out.shape == imgs.shape and mats.shape == (16, 3, 3)
        flipped = aug.sample_params(16, 24, 40, generator=gen(3))['hflip']  # the draws forward made
        assert flipped.all() if hflip_prob == 1.0 else (flipped.any() == geometric)


def test_split_sampling_ops_and_apply_agree():
    """The parameter sampler, the op library and the module are kornia's three parts of one augmentation."""
    assert set(strong_ops.PHOTOMETRIC_FNS) == set(PHOTOMETRIC_OPS)  # every op of Table 10 in the library, once
    assert set(strong_ops.GEOMETRIC_FNS) == set(GEOMETRIC_OPS)
    assert strong_params.TABLE10_MAGNITUDES is TABLE10_MAGNITUDES and sa.StrongAugment is StrongAugment
    aug = StrongAugment(op_draw='sample', hflip_prob=0.3, cutout=(0.2, 0.25))
    p = aug.sample_params(16, H, W, generator=gen(6))
    q = strong_params.sample_strong_params(
        16, H, W, aug.ops, num_ops=2, op_draw='sample', cutout=(0.2, 0.25), hflip_prob=0.3, generator=gen(6))
    assert p.keys() == q.keys() and all(torch.equal(p[k], q[k]) for k in p)
    with pytest.raises(ValueError, match='op_draw'):
        StrongAugment(op_draw='image')


@pytest.mark.parametrize('module', [sa, strong_ops, strong_params])
def test_docstring_examples_run(module):
    import doctest
    result = doctest.testmod(module, extraglobs=dict(torch=torch), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
