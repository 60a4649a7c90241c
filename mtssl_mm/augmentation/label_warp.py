"""Move labels with the strong view's geometry: the ``A o alpha^-1`` of the paper's Eq. 4.

:class:`~mtssl_mm.augmentation.StrongAugment` is applied to the weak view ``alpha(x)``, so the transform that
takes a pseudo-label predicted on the weak view to the strong view is exactly the strong view's own geometry,
one ``(3, 3)`` matrix per sample. The functions here apply those matrices to labels.

Coordinate conventions (both are used; every matrix in this package is in the first):

* **Pixel-index coordinates** ``(x, y)``: the centre of pixel ``[row i, column j]`` is at ``(j, i)``; the image
  spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``. This is what ``kornia.geometry.transform.warp_affine`` with
  ``align_corners=True`` and ``cv2.warpAffine`` use: ``dst(p) = src(M^-1 p)``. The matrices returned by
  ``StrongAugment`` map weak-view pixel-index coordinates to strong-view pixel-index coordinates.
* **Box coordinates** ``(u, v)`` (mmdet's ``x1y1x2y2`` boxes): pixel ``[i, j]`` covers ``[j, j + 1) x [i, i + 1)``,
  its centre is at ``(j + 0.5, i + 0.5)``; the image spans ``[0, W] x [0, H]``. So ``u = x + 0.5``.

A matrix ``M`` in pixel-index coordinates acts in box coordinates as ``S M S^-1`` with ``S`` the translation by
``(+0.5, +0.5)`` (:func:`to_box_coordinates`). For a horizontal flip, ``x -> W - 1 - x`` becomes ``u -> W - u``;
a translation is unchanged; a rotation about the centre ``((W - 1) / 2, (H - 1) / 2)`` becomes a rotation about
``(W / 2, H / 2)``. :func:`warp_boxes` does this conversion itself, so boxes and images warped with the same
matrix agree (tested against OpenCV-warped instance masks).
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['to_box_coordinates', 'warp_seg_maps', 'warp_boxes', 'warp_boxes_batch']


def _half_pixel_shift(like: Tensor, sign: float) -> Tensor:
    """The translation by ``sign * (0.5, 0.5)``, shaped ``(3, 3)`` with ``like``'s dtype and device."""
    shift = torch.eye(3, dtype=like.dtype, device=like.device)
    shift[0, 2] = shift[1, 2] = 0.5 * sign
    return shift


def to_box_coordinates(matrices: Tensor) -> Tensor:
    """Express pixel-index-coordinate matrices in box coordinates (pixel ``j`` covers ``[j, j + 1)``).

    Args:
        matrices: ``(..., 3, 3)`` transforms in pixel-index coordinates (pixel centres at integers).

    Returns:
        ``(..., 3, 3)`` the same transforms acting on box coordinates, ``S @ M @ S^-1`` with ``S`` the translation
        by ``(+0.5, +0.5)``. Use them with mmdet's ``bbox_project``.

    Example:
        >>> flip = torch.tensor([[-1., 0., 9.], [0., 1., 0.], [0., 0., 1.]])  # x -> 9 - x on a 10-px-wide image
        >>> to_box_coordinates(flip)[0].tolist()  # u -> 10 - u
        [-1.0, 0.0, 10.0]
    """
    return _half_pixel_shift(matrices, 1.0) @ matrices @ _half_pixel_shift(matrices, -1.0)


def warp_seg_maps(labels: Tensor,
                  matrices: Tensor,
                  out_size: Optional[Tuple[int, int]] = None,
                  ignore_index: int = 255) -> Tensor:
    """Warp a batch of label maps with nearest sampling; pixels from outside the source become ``ignore_index``.

    Output pixel ``p`` (pixel-index coordinates) reads source pixel ``floor(M^-1 p + 0.5)``, the nearest one, and
    is ``ignore_index`` when that pixel lies outside the source image. This is
    ``cv2.warpAffine(..., flags=cv2.INTER_NEAREST, borderValue=ignore_index)`` except at exact ties (a source
    coordinate half-way between two pixels), which OpenCV rounds to even and this function rounds up, so a
    half-pixel shift moves every column alike. All samples are warped in one batched gather, without a loop over
    samples.

    Args:
        labels: ``(B, H, W)`` integer label maps (uint8 or int64 class indices).
        matrices: ``(B, 3, 3)`` source-to-destination transforms in pixel-index coordinates, e.g. the
            ``matrices`` returned by :class:`~mtssl_mm.augmentation.StrongAugment`. Affine or projective.
        out_size: ``(H_out, W_out)`` of the warped maps; defaults to ``(H, W)``.
        ignore_index: the value of pixels that come from outside the source.

    Returns:
        ``(B, H_out, W_out)`` label maps with ``labels``' dtype and device.

    Example:
        >>> labels = torch.arange(12, dtype=torch.uint8).view(1, 3, 4)
        >>> shift = torch.tensor([[[1., 0., 1.], [0., 1., 0.], [0., 0., 1.]]])  # one pixel to the right
        >>> warp_seg_maps(labels, shift)[0, 0].tolist()
        [255, 0, 1, 2]
    """
    if labels.dim() != 3 or matrices.shape != (labels.shape[0], 3, 3):
        raise ValueError(f'expected labels (B, H, W) and matrices (B, 3, 3), got {tuple(labels.shape)} '
                         f'and {tuple(matrices.shape)}')
    b, h, w = labels.shape
    h_out, w_out = (h, w) if out_size is None else out_size
    # dst -> src, inverted in float64; the per-pixel arithmetic runs in float32 (memory: 3 planes per sample)
    inv = torch.linalg.inv(matrices.to(device=labels.device, dtype=torch.float64)).float()  # (B, 3, 3)
    ys = torch.arange(h_out, device=labels.device, dtype=torch.float32).view(1, h_out, 1)
    xs = torch.arange(w_out, device=labels.device, dtype=torch.float32).view(1, 1, w_out)

    def row_of(k: int) -> Tensor:  # (B, H_out, W_out): row k of inv applied to every (x, y, 1)
        return inv[:, k, 0, None, None] * xs + inv[:, k, 1, None, None] * ys + inv[:, k, 2, None, None]

    denom = row_of(2)
    col = torch.floor(row_of(0) / denom + 0.5)
    row = torch.floor(row_of(1) / denom + 0.5)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)  # (B, H_out, W_out)
    flat = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).long().view(b, -1)
    out = labels.reshape(b, h * w).gather(1, flat).view(b, h_out, w_out)
    out = torch.where(inside, out, torch.full_like(out, ignore_index))
    return out


def _warp_boxes_per_box(boxes: Tensor, matrices: Tensor, out_size: Tuple[int, int],
                        min_size: float) -> Tuple[Tensor, Tensor]:
    """Warp each box with its own matrix: corners mapped, enclosing box, clipped, small boxes flagged.

    Args:
        boxes: ``(N, 4)`` boxes ``x1y1x2y2`` in box coordinates (pixels, pixel ``j`` covers ``[j, j + 1)``).
        matrices: ``(N, 3, 3)`` pixel-index-coordinate transforms, one per box.
        out_size: ``(H_out, W_out)``; boxes are clipped to ``[0, W_out] x [0, H_out]``.
        min_size: boxes narrower or lower than this (pixels, after clipping) are flagged as dropped.

    Returns:
        ``(N, 4)`` warped and clipped boxes, and ``(N,)`` bool ``keep``.
    """
    h_out, w_out = out_size
    m = to_box_coordinates(matrices.to(device=boxes.device, dtype=torch.float32))  # (N, 3, 3)
    x1, y1, x2, y2 = boxes.float().unbind(-1)
    corners = torch.stack(
        [torch.stack([x1, y1], -1),
         torch.stack([x2, y1], -1),
         torch.stack([x1, y2], -1),
         torch.stack([x2, y2], -1)],
        dim=1)  # (N, 4, 2)
    corners = torch.cat([corners, torch.ones_like(corners[..., :1])], dim=-1) @ m.transpose(1, 2)  # (N, 4, 3)
    corners = corners[..., :2] / corners[..., 2:]
    lo, hi = corners.amin(dim=1), corners.amax(dim=1)  # (N, 2)
    limit = torch.tensor([w_out, h_out], dtype=lo.dtype, device=lo.device)
    lo = torch.minimum(lo.clamp(min=0), limit)
    hi = torch.minimum(hi.clamp(min=0), limit)
    warped = torch.cat([lo, hi], dim=-1)
    size = hi - lo
    keep = (size[:, 0] >= min_size) & (size[:, 1] >= min_size)
    return warped.to(boxes.dtype), keep


def warp_boxes(boxes: Tensor,
               matrix: Tensor,
               out_size: Tuple[int, int],
               min_size: float = 2.0) -> Tuple[Tensor, Tensor]:
    """Warp boxes with one image's geometry: four corners mapped, enclosing box, clipped, small boxes dropped.

    Args:
        boxes: ``(N, 4)`` boxes ``x1y1x2y2`` in box coordinates (pixels; pixel ``j`` covers ``[j, j + 1)``, as in
            mmdet).
        matrix: ``(3, 3)`` source-to-destination transform in pixel-index coordinates (pixel centres at
            integers), e.g. one of the ``matrices`` returned by :class:`~mtssl_mm.augmentation.StrongAugment`.
            It is converted to box coordinates with :func:`to_box_coordinates`.
        out_size: ``(H_out, W_out)`` of the destination image; boxes are clipped to ``[0, W_out] x [0, H_out]``.
        min_size: boxes whose clipped width or height is below this many pixels are dropped.

    Returns:
        ``(M, 4)`` the kept warped boxes (``boxes``' dtype), and ``(N,)`` bool ``keep`` (``M = keep.sum()``) to
        select the boxes' labels and scores.

    Example:
        >>> flip = torch.tensor([[-1., 0., 9.], [0., 1., 0.], [0., 0., 1.]])  # horizontal flip, 10 px wide
        >>> warp_boxes(torch.tensor([[1., 2., 4., 6.], [9.5, 0., 10., 5.]]), flip, (8, 10))
        (tensor([[6., 2., 9., 6.]]), tensor([ True, False]))
    """
    warped, keep = _warp_boxes_per_box(
        boxes.reshape(-1, 4),
        matrix.reshape(1, 3, 3).expand(boxes.shape[0], 3, 3), out_size, min_size)
    return warped[keep], keep


def warp_boxes_batch(boxes: Sequence[Tensor],
                     matrices: Tensor,
                     out_size: Tuple[int, int],
                     min_size: float = 2.0) -> Tuple[List[Tensor], List[Tensor]]:
    """:func:`warp_boxes` for a batch: all boxes warped together, each with its own sample's matrix.

    The boxes of all samples are concatenated once and each box reads its sample's matrix through a batch
    index; there is no loop over boxes or samples except the final split.

    Args:
        boxes: ``B`` tensors ``(N_b, 4)`` of ``x1y1x2y2`` boxes in box coordinates.
        matrices: ``(B, 3, 3)`` pixel-index-coordinate transforms.
        out_size: ``(H_out, W_out)`` of the destination images.
        min_size: see :func:`warp_boxes`.

    Returns:
        ``B`` tensors ``(M_b, 4)`` of kept warped boxes, and ``B`` bool tensors ``(N_b,)`` ``keep``.
    """
    if len(boxes) != matrices.shape[0]:
        raise ValueError(f'{len(boxes)} box tensors for {matrices.shape[0]} matrices')
    if len(boxes) == 0:
        return [], []
    counts = [int(b.shape[0]) for b in boxes]
    flat = torch.cat([b.reshape(-1, 4) for b in boxes], dim=0)
    batch_idx = torch.repeat_interleave(
        torch.arange(len(boxes), device=matrices.device), torch.tensor(counts, device=matrices.device))
    warped, keep = _warp_boxes_per_box(flat, matrices[batch_idx], out_size, min_size)
    warped, keep = warped.split(counts), keep.split(counts)
    return [w[k] for w, k in zip(warped, keep)], list(keep)
