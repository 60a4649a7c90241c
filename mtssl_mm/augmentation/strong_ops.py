"""The operations of :class:`~mtssl_mm.augmentation.StrongAugment`: photometric functions and affine matrices.

Photometric ops map ``(n, 3, H, W)`` float32 images in ``[0, 1]`` and ``(n,)`` magnitudes (units of
:data:`~mtssl_mm.augmentation.TABLE10_MAGNITUDES`) to ``(n, 3, H, W)`` images, vectorised over samples, with
PIL's definitions (the library RandAugment's come from). Geometric ops do not touch images: they map ``(B,)``
magnitudes to ``(B, 3, 3)`` matrices in pixel-index coordinates (pixel ``[i, j]`` has its centre at
``(x, y) = (j, i)``), about the image centre, sending a weak-view point to the strong-view point; the one warp
that applies them lives in :mod:`.strong_augment`. :func:`cutout_` fills the Cutout rectangles.
"""
from typing import Callable, Dict, Optional, Sequence

import kornia.enhance as KE
import torch
from torch import Tensor

__all__ = [
    'auto_contrast', 'brightness', 'PHOTOMETRIC_FNS', 'shear_x_matrix', 'shear_y_matrix', 'rotate_matrix',
    'translate_x_matrix', 'translate_y_matrix', 'hflip_matrix', 'GEOMETRIC_FNS', 'cutout_'
]

# ----------------------------------------------------------------------------------------------------------------
# Photometric ops: (n, 3, H, W) float32 in [0, 1] and (n,) magnitudes -> (n, 3, H, W). Vectorised over samples.
# ----------------------------------------------------------------------------------------------------------------


def _per_sample(m: Tensor) -> Tensor:
    """``(n,)`` -> ``(n, 1, 1, 1)`` to broadcast over ``(n, C, H, W)``."""
    return m.view(-1, 1, 1, 1)


def auto_contrast(x: Tensor, m: Optional[Tensor] = None) -> Tensor:
    """PIL ``ImageOps.autocontrast``: stretch each channel of each image to ``[0, 1]``; flat channels unchanged.

    Args:
        x: ``(n, C, H, W)`` images in ``[0, 1]``.
        m: unused (the op has no magnitude).

    Returns:
        ``(n, C, H, W)`` images.
    """
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    span = hi - lo
    stretched = (x - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, stretched, x).clamp_(0.0, 1.0)


def brightness(x: Tensor, m: Tensor) -> Tensor:
    """PIL ``ImageEnhance.Brightness``: blend with black, ``clamp(m * x)``; ``m = 1`` is the identity.

    ``kornia.enhance.adjust_brightness`` is additive, a different operation, hence this one-liner.

    Args:
        x: ``(n, C, H, W)`` images in ``[0, 1]``.
        m: ``(n,)`` factors.

    Returns:
        ``(n, C, H, W)`` images.
    """
    return (x * _per_sample(m)).clamp_(0.0, 1.0)


#: ``{op name: fn(x (n, 3, H, W), m (n,)) -> (n, 3, H, W)}`` for every op of ``PHOTOMETRIC_OPS``.
PHOTOMETRIC_FNS: Dict[str, Callable[[Tensor, Tensor], Tensor]] = dict(
    AutoContrast=auto_contrast,
    Equalize=lambda x, m: KE.equalize(x),
    Invert=lambda x, m: KE.invert(x),
    Solarize=lambda x, m: KE.solarize(x, m),  # invert the pixels >= threshold m (per sample)
    Posterize=lambda x, m: KE.posterize(x,
                                        m.round().long()),  # keep m bits of the 8-bit level
    # PIL ImageEnhance.Color: blend with the luma image (kornia's adjust_saturation scales HSV saturation instead)
    Saturation=lambda x, m: KE.adjust_saturation_with_gray_subtraction(x, m),
    # PIL ImageEnhance.Contrast: blend with the image's mean luma
    Contrast=lambda x, m: KE.adjust_contrast_with_mean_subtraction(x, m),
    Brightness=brightness,
    # PIL ImageEnhance.Sharpness: blend with the 3x3-smoothed image, borders kept
    Sharpness=lambda x, m: KE.sharpness(x, m),
)

# ----------------------------------------------------------------------------------------------------------------
# Geometric ops: (B,) magnitudes -> (B, 3, 3) matrices in pixel-index coordinates, about the image centre.
# ----------------------------------------------------------------------------------------------------------------


def _linear_about_centre(a: Tensor, b: Tensor, c: Tensor, d: Tensor, height: int, width: int) -> Tensor:
    """``(B, 3, 3)`` matrices applying ``[[a, b], [c, d]]`` about the centre ``((W - 1) / 2, (H - 1) / 2)``.

    The centre is the image centre in pixel-index coordinates (``(W / 2, H / 2)`` in box coordinates).
    """
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [
        torch.stack([a, b, cx - a * cx - b * cy], dim=-1),
        torch.stack([c, d, cy - c * cx - d * cy], dim=-1),
        torch.stack([zero, zero, one], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def shear_x_matrix(deg: Tensor, height: int, width: int) -> Tensor:
    """``x' = x + tan(deg) (y - cy)``: ``(B,)`` degrees -> ``(B, 3, 3)``."""
    one, zero = torch.ones_like(deg), torch.zeros_like(deg)
    return _linear_about_centre(one, torch.tan(torch.deg2rad(deg)), zero, one, height, width)


def shear_y_matrix(deg: Tensor, height: int, width: int) -> Tensor:
    """``y' = y + tan(deg) (x - cx)``: ``(B,)`` degrees -> ``(B, 3, 3)``."""
    one, zero = torch.ones_like(deg), torch.zeros_like(deg)
    return _linear_about_centre(one, zero, torch.tan(torch.deg2rad(deg)), one, height, width)


def rotate_matrix(deg: Tensor, height: int, width: int) -> Tensor:
    """Rotation about the centre, positive = counter-clockwise on screen (kornia's ``get_rotation_matrix2d``).

    Args:
        deg: ``(B,)`` angles in degrees.
        height: image height (pixels).
        width: image width (pixels).

    Returns:
        ``(B, 3, 3)`` matrices ``[[cos, sin], [-sin, cos]]`` about ``((W - 1) / 2, (H - 1) / 2)``.

    Example:
        >>> m = rotate_matrix(torch.tensor([90.0]), 3, 5)  # about (2, 1): the pixel (0, 0) goes to (1, 3)
        >>> (m @ torch.tensor([0.0, 0.0, 1.0])).round()
        tensor([[1., 3., 1.]])
    """
    rad = torch.deg2rad(deg)
    cos, sin = torch.cos(rad), torch.sin(rad)
    return _linear_about_centre(cos, sin, -sin, cos, height, width)


def translate_x_matrix(frac: Tensor, height: int, width: int) -> Tensor:
    """Translation by ``frac * W`` pixels along x: ``(B,)`` fractions -> ``(B, 3, 3)``."""
    m = torch.eye(3, dtype=frac.dtype, device=frac.device).repeat(frac.shape[0], 1, 1)
    m[:, 0, 2] = frac * width
    return m


def translate_y_matrix(frac: Tensor, height: int, width: int) -> Tensor:
    """Translation by ``frac * H`` pixels along y: ``(B,)`` fractions -> ``(B, 3, 3)``."""
    m = torch.eye(3, dtype=frac.dtype, device=frac.device).repeat(frac.shape[0], 1, 1)
    m[:, 1, 2] = frac * height
    return m


def hflip_matrix(m: Tensor, height: int, width: int) -> Tensor:
    """Horizontal flip ``x' = W - 1 - x`` (``u' = W - u`` in box coordinates): ``(B,)`` ignored -> ``(B, 3, 3)``.

    Example:
        >>> hflip_matrix(torch.zeros(1), 3, 5)
        tensor([[[-1.,  0.,  4.],
                 [ 0.,  1.,  0.],
                 [ 0.,  0.,  1.]]])
    """
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _linear_about_centre(-one, zero, zero, one, height, width)


#: ``{op name: fn(m (B,), H, W) -> (B, 3, 3)}`` for every op of ``GEOMETRIC_OPS`` (the flip is not a pool op).
GEOMETRIC_FNS: Dict[str, Callable[[Tensor, int, int], Tensor]] = dict(
    ShearX=shear_x_matrix,
    ShearY=shear_y_matrix,
    TranslateX=translate_x_matrix,
    TranslateY=translate_y_matrix,
    Rotate=rotate_matrix,
)

# ----------------------------------------------------------------------------------------------------------------
# Cutout: not a label transform, applied to the strong image last.
# ----------------------------------------------------------------------------------------------------------------


def cutout_(x: Tensor, boxes: Tensor, fill: Sequence[float]) -> Tensor:
    """Fill each sample's Cutout rectangle with ``fill``, in place.

    Args:
        x: ``(B, C, H, W)`` images, modified in place.
        boxes: ``(B, 4)`` int64 ``x1, y1, x2, y2`` pixel indices, half-open (columns ``x1 <= j < x2``).
        fill: ``C`` values, one per channel.

    Returns:
        ``x``.
    """
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    cols = torch.arange(x.shape[-1], device=x.device)
    rows = torch.arange(x.shape[-2], device=x.device)
    in_cols = (cols >= x1[:, None]) & (cols < x2[:, None])  # (B, W)
    in_rows = (rows >= y1[:, None]) & (rows < y2[:, None])  # (B, H)
    inside = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
    for channel, value in enumerate(fill):
        x[:, channel].masked_fill_(inside, value)
    return x
