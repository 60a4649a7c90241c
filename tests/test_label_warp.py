"""Label transforms of the strong view, checked against OpenCV (an independent implementation of the same warp).

Segmentation maps are compared with ``cv2.warpAffine(..., INTER_NEAREST, borderValue=255)``; boxes with the
boxes recomputed from instance masks warped by OpenCV. Matrices are in pixel-index coordinates, the convention
``cv2.warpAffine`` and ``kornia.geometry.transform.warp_affine(align_corners=True)`` share.
"""
import math

import cv2
import numpy as np
import pytest
import torch

from mtssl_mm.augmentation import to_box_coordinates, warp_boxes, warp_boxes_batch, warp_seg_maps

H, W = 60, 84


def about_centre(linear, h=H, w=W):
    """(3, 3) float64 matrix applying the 2x2 ``linear`` about the image centre, in pixel-index coordinates."""
    c = np.array([[1, 0, (w - 1) / 2], [0, 1, (h - 1) / 2], [0, 0, 1]])
    a = np.eye(3)
    a[:2, :2] = linear
    return c @ a @ np.linalg.inv(c)


def translate(tx, ty):
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)


def rotate(deg):
    r = math.radians(deg)
    return about_centre([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])


def shear(sx, sy):
    return about_centre([[1, math.tan(math.radians(sx))], [math.tan(math.radians(sy)), 1]])


def scale(s):
    return about_centre([[s, 0], [0, s]])


FLIP = about_centre([[-1, 0], [0, 1]])

AXIS_ALIGNED = [
    translate(7.3, -4.6),
    translate(-20.4, 11.6),  # no exact half-pixel ties: OpenCV breaks those to even
    FLIP,
    FLIP @ translate(3.25, 2.75),
    scale(1.3),
    scale(0.7) @ FLIP,
    translate(5.5, -3.0) @ scale(1.15) @ FLIP,
]
GENERAL = [
    rotate(23.0),
    rotate(-30.0) @ FLIP,
    shear(17.0, 0.0) @ translate(4.4, -6.1),
    shear(0.0, -12.0) @ rotate(9.0),
    translate(-8.0, 5.5) @ rotate(-17.0) @ shear(10.0, 0.0),
    rotate(45.0) @ scale(1.2),
]


def label_image(seed, h=H, w=W):
    """Piecewise-constant labels: a coarse random grid upsampled, plus a few ellipses (classes 0..18)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 19, size=(6, 8), dtype=np.uint8)
    lab = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_NEAREST)
    for _ in range(4):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(4, 20)), int(rng.integers(4, 20)))
        cv2.ellipse(lab, centre, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(0, 19)), -1)
    return lab


def stable_region(ref, band=2):
    """Pixels whose (2 band + 1)^2 neighbourhood in the reference has one value (away from all borders)."""
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    return cv2.dilate(ref, kernel) == cv2.erode(ref, kernel)


# ----------------------------------------------------------------------------------------------- seg maps ----


@pytest.mark.parametrize('out_size', [(H, W), (50, 96)])
def test_seg_warp_matches_opencv(out_size):
    mats = AXIS_ALIGNED + GENERAL
    labels = np.stack([label_image(i) for i in range(len(mats))])
    matrices = torch.tensor(np.stack(mats), dtype=torch.float32)
    out = warp_seg_maps(torch.from_numpy(labels), matrices, out_size=out_size)
    assert out.shape == (len(mats), *out_size) and out.dtype == torch.uint8
    for lab, m, got in zip(labels, mats, out.numpy()):
        ref = cv2.warpAffine(
            lab,
            m[:2], (out_size[1], out_size[0]),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=255)
        stable = stable_region(ref)
        assert stable.mean() > 0.3
        np.testing.assert_array_equal(got[stable], ref[stable])
        # elsewhere they differ only at exact ties (OpenCV rounds half to even, warp_seg_maps half up)
        assert (got != ref).mean() < 0.015
        assert (got == 255).any() == (ref == 255).any()


def test_seg_warp_outside_is_ignore_and_identity_is_exact():
    labels = torch.from_numpy(np.stack([label_image(0), label_image(1)])).long()
    eye = torch.eye(3).expand(2, 3, 3)
    assert torch.equal(warp_seg_maps(labels, eye), labels)
    far = torch.tensor(translate(W + 5, 0), dtype=torch.float32).expand(2, 3, 3)
    assert (warp_seg_maps(labels, far) == 255).all()
    half = torch.tensor(translate(W / 2, 0), dtype=torch.float32).expand(2, 3, 3)
    out = warp_seg_maps(labels, half, ignore_index=-1)
    assert (out[:, :, :W // 2] == -1).all() and (out[:, :, W // 2 + 1:] >= 0).all()
    assert out.dtype == torch.int64


def test_seg_warp_projective_matches_opencv():
    lab = label_image(3)
    m = rotate(12.0) @ np.array([[1, 0, 0], [0, 1, 0], [4e-4, -3e-4, 1]])
    got = warp_seg_maps(torch.from_numpy(lab)[None], torch.tensor(m, dtype=torch.float32)[None])[0].numpy()
    ref = cv2.warpPerspective(lab, m, (W, H), flags=cv2.INTER_NEAREST, borderValue=255)
    stable = stable_region(ref)
    np.testing.assert_array_equal(got[stable], ref[stable])


# ----------------------------------------------------------------------------------------------- boxes ----


def instances(seed, n=16):
    """Instance masks (odd: ellipses, even: rectangles; some cut by the border), their boxes, and is-rectangle."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, H, W), np.uint8)
    for i in range(n):
        cx, cy = int(rng.integers(-5, W + 5)), int(rng.integers(-5, H + 5))
        if i % 2:
            cv2.ellipse(masks[i], (cx, cy), (int(rng.integers(3, 15)), int(rng.integers(3, 15))),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
        else:
            w, h = int(rng.integers(3, 30)), int(rng.integers(3, 30))
            masks[i, max(cy, 0):max(cy + h, 0), max(cx, 0):max(cx + w, 0)] = 1
    keep = masks.reshape(n, -1).any(1)
    is_rect = (np.arange(n) % 2 == 0)[keep]
    masks = masks[keep]
    return masks, np.stack([mask_box(m) for m in masks]), is_rect


def mask_box(mask):
    """Tight box of a mask in box coordinates (pixel j covers [j, j + 1)); None when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def warped_mask_boxes(masks, m):
    return [mask_box(cv2.warpAffine(mask, m[:2], (W, H), flags=cv2.INTER_NEAREST, borderValue=0)) for mask in masks]


def touches_border(box):
    return box[0] <= 0 or box[1] <= 0 or box[2] >= W or box[3] >= H


@pytest.mark.parametrize('idx', range(len(AXIS_ALIGNED)))
def test_boxes_axis_aligned_within_one_pixel_of_warped_masks(idx):
    m = AXIS_ALIGNED[idx]
    masks, boxes, is_rect = instances(idx)
    got, keep = warp_boxes(torch.from_numpy(boxes), torch.tensor(m, dtype=torch.float32), (H, W), min_size=2.0)
    assert keep.sum() == len(got)
    ref = warped_mask_boxes(masks, m)
    kept = iter(got.numpy())
    compared = 0
    for r, k, rect in zip(ref, keep.tolist(), is_rect):
        box = next(kept) if k else None
        if r is None:  # the instance left the image (an ellipse's box corner may stay in)
            assert not (k and rect)
            continue
        if min(r[2] - r[0], r[3] - r[1]) >= 4:  # clearly large enough to be kept
            assert k
        # the box of a clipped ellipse is not the clipped box of the ellipse: compare those only when unclipped
        if k and (rect or not touches_border(r)):
            np.testing.assert_allclose(box, r, atol=1.0)
            compared += 1
    assert compared >= 3


@pytest.mark.parametrize('idx', range(len(GENERAL)))
def test_boxes_general_affine_contain_warped_masks(idx):
    m = GENERAL[idx]
    masks, boxes, is_rect = instances(100 + idx)
    got, keep = warp_boxes(torch.from_numpy(boxes), torch.tensor(m, dtype=torch.float32), (H, W), min_size=0.0)
    full, _ = warp_boxes(torch.from_numpy(boxes), torch.tensor(m, dtype=torch.float32), (H, W), min_size=-1.0)
    ref = warped_mask_boxes(masks, m)
    for r, box, rect in zip(ref, full.numpy(), is_rect):
        if r is None:
            continue
        # mask pixels are those whose centre lands in the warped box: their extent reaches 0.5 px beyond it
        assert (box[:2] <= r[:2] + 0.5 + 1e-3).all() and (box[2:] >= r[2:] - 0.5 - 1e-3).all()
        if rect and not touches_border(r):  # a whole rectangle's corners are its extremes: the box is tight
            np.testing.assert_allclose(box, r, atol=1.5)
    assert ((full[:, 2:] >= full[:, :2]).all())
    assert ((full >= 0).all() and (full[:, [0, 2]] <= W).all() and (full[:, [1, 3]] <= H).all())


def test_box_conversion_and_drop_rules():
    flip = torch.tensor(FLIP, dtype=torch.float32)
    np.testing.assert_allclose(to_box_coordinates(flip).numpy(), [[-1, 0, W], [0, 1, 0], [0, 0, 1]], atol=1e-5)
    # rotation about the pixel-index centre fixes the box-coordinate centre (W / 2, H / 2)
    rot = to_box_coordinates(torch.tensor(rotate(33.0), dtype=torch.float64))
    np.testing.assert_allclose(
        (rot @ torch.tensor([W / 2, H / 2, 1.0], dtype=torch.float64)).numpy(), [W / 2, H / 2, 1.0], atol=1e-9)
    boxes = torch.tensor([[0., 0., 10., 10.], [W - 3., 5., W, 9.], [1., 1., 2.5, 30.]])
    got, keep = warp_boxes(boxes, flip, (H, W), min_size=2.0)
    assert keep.tolist() == [True, True, False]  # the 1.5-px-wide box is dropped
    np.testing.assert_allclose(got.numpy(), [[W - 10., 0., W, 10.], [0., 5., 3., 9.]])
    # clipped to the image, then dropped when the visible part is too thin
    boxes = torch.tensor([[0., 0., 10., 10.], [W - 3., 5., W, 9.], [1., 1., 9.5, 30.], [7., 2., 12., 8.],
                          [8., 2., 12., 8.]])
    got, keep = warp_boxes(boxes, torch.tensor(translate(W - 9.0, 0.0), dtype=torch.float32), (H, W), min_size=2.0)
    assert keep.tolist() == [True, False, True, True, False]
    np.testing.assert_allclose(got.numpy(), [[W - 9., 0., W, 10.], [W - 8., 1., W, 30.], [W - 2., 2., W, 8.]])
    empty, keep = warp_boxes(torch.zeros(0, 4), flip, (H, W))
    assert empty.shape == (0, 4) and keep.shape == (0, )


def test_warp_boxes_batch_equals_per_sample():
    mats = torch.tensor(np.stack(GENERAL[:3] + AXIS_ALIGNED[:2]), dtype=torch.float32)
    boxes = [torch.from_numpy(instances(s)[1]) for s in range(5)]
    boxes[2] = torch.zeros(0, 4)
    got, keep = warp_boxes_batch(boxes, mats, (H, W), min_size=2.0)
    assert len(got) == len(keep) == 5
    for b, m, g, k in zip(boxes, mats, got, keep):
        ref, ref_keep = warp_boxes(b, m, (H, W), min_size=2.0)
        assert torch.equal(k, ref_keep) and torch.allclose(g, ref)
    assert warp_boxes_batch([], torch.zeros(0, 3, 3), (H, W)) == ([], [])


def test_batched_box_warp_equals_mmdets_bbox_project_per_sample():
    """warp_boxes_batch is mmdet's bbox_project (corners, enclosing box, clip) with each sample's matrix in box
    coordinates, for the whole batch in one op, plus the small-box filter."""
    from mmdet.structures.bbox import bbox_project
    g = torch.Generator().manual_seed(0)
    mats = torch.from_numpy(np.stack([rotate(17.0) @ translate(5, -3), shear(11, -6) @ scale(1.3), FLIP])).float()
    boxes = [torch.rand(n, 2, generator=g) * torch.tensor([W, H]) for n in (5, 0, 7)]
    boxes = [torch.cat([b, b + 4 + torch.rand(len(b), 2, generator=g) * 20], dim=1) for b in boxes]
    warped, keeps = warp_boxes_batch(boxes, mats, (H, W), min_size=0.0)
    for b, m, w, k in zip(boxes, mats, warped, keeps):
        ref = bbox_project(b.clone(), to_box_coordinates(m), img_shape=(H, W))
        assert k.all() or len(b) == 0
        torch.testing.assert_close(w, ref[k], atol=1e-4, rtol=0)
