"""The strong augmentation ``A`` of FixMatch* and Dense FixMatch, batch-wise on the device.

RandAugment with the operations and magnitude ranges of the paper's Table 10, then (Dense FixMatch only) a
random horizontal flip, then Cutout, applied to the weak view ``alpha(x)``. This is the order of the authors' own
code (github miquelmarti/DenseFixMatch, ``dataloading/transforms.py``, ``BatchRandAugment``): RandomCrop (here
part of the weak view) -> ``num_ops`` ops drawn from the RandAugment pool -> RandomHorizontalFlip(p=0.5) ->
Cutout. The flip is not one of the pool's ops: it is drawn separately, with probability ``hflip_prob``, after the
drawn ops. The ``num_ops`` operations are drawn once per batch (``op_draw='batch'``, the default: the authors'
``K.AugmentationSequential(random_apply=2)`` draws them once per call, on each process) or per sample
(``op_draw='sample'``); magnitudes, the flip and Cutout are drawn per sample either way. Each sample's geometry is
returned as a ``(3, 3)`` matrix, which is exactly the pseudo-label transform
``A o alpha^-1`` of Eq. 4 (the input already is the weak view). Labels follow with
:mod:`mtssl_mm.augmentation.label_warp`.

Call flow of :meth:`StrongAugment.forward`::

    imgs (B, 3, H, W) in [0, 1], any float dtype
     |
     |  sample_params(B, H, W), on the host  ->  op_idx (B, num_ops), magnitudes (B, num_ops), cutout (B, 4),
     |                                           hflip (B,) bool
     v
    apply_params(imgs, params):
     |- _plan, on the host: compute_matrices (each sample's geometric ops, in drawn order, then its flip, composed
     |  into one (3, 3) matrix ``F^hflip @ G_last @ ... @ G_first``), which samples drew which op, which matrices
     |  are not the identity; two copies to the device, no sync (the image path never reads a device value)
     |  then on the device, in float32 with autocast off:
     |- photometric ops: for slot in num_ops, for op in the photometric ops: the op on the sub-batch that drew
     |  it there (index_select -> op -> index_copy_); the loop count does not depend on B
     |- one batched kornia warp_affine (bilinear, padding ``fill``) of the samples whose matrix is not identity
     |  (the drawn affine ops and the flip together)
     '- Cutout on the strong image, last (not a label transform)
     v
    imgs_strong (B, 3, H, W) input dtype, matrices (B, 3, 3) float32

Matrices are in pixel-index coordinates (pixel ``[i, j]`` has its centre at ``(x, y) = (j, i)``; the convention
of ``kornia.geometry.transform.warp_affine(align_corners=True)`` and ``cv2.warpAffine``) and map a weak-view point
to the strong-view point: ``strong(M p) = weak(p)``. See :mod:`~mtssl_mm.augmentation.label_warp` for boxes, which
use mmdet's convention (pixel ``j`` covers ``[j, j + 1)``).

Order of operations. RandAugment applies its two operations in the drawn order; here the photometric ones run
first (in drawn order among themselves) and the sample's geometry (drawn affine ops, then the flip) is applied
afterwards in one warp. The pixel-wise ops (Invert, Solarize, Posterize, Brightness) commute with a warp up to
bilinear interpolation; AutoContrast, Equalize, Contrast (image mean), Saturation (pixel-wise) and Sharpness (3x3
neighbourhood) see the image before the warp rather than after it, and the padded area is always ``fill`` (never
e.g. inverted). Both are views RandAugment could equally have produced, and a single warp keeps the image sampled
only once. The flip itself commutes exactly with every photometric op (their statistics and the symmetric 3x3
kernel do not depend on left and right), so it does come after the drawn ops, as in the authors' code; Cutout
comes after the flip (its rectangle is drawn in strong-view coordinates).
"""
from contextlib import nullcontext
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import kornia.enhance as KE
import torch
from kornia.geometry.transform import warp_affine
from mmdet.registry import MODELS
from torch import Tensor, nn

__all__ = ['StrongAugment', 'PHOTOMETRIC_OPS', 'GEOMETRIC_OPS', 'TABLE10_MAGNITUDES']

#: Operations of the paper's Table 10 that act on pixel values only (the unstarred ones): FixMatch* uses these.
PHOTOMETRIC_OPS = ('AutoContrast', 'Equalize', 'Invert', 'Solarize', 'Posterize', 'Saturation', 'Contrast',
                   'Brightness', 'Sharpness')
#: Operations of Table 10 marked * (affine) in the RandAugment pool: moved onto the labels by Dense FixMatch,
#: dropped by FixMatch*. The horizontal flip is not among them: as in the authors' code it is applied after the
#: drawn ops with probability ``StrongAugment(hflip_prob=...)`` (Dense FixMatch only).
GEOMETRIC_OPS = ('ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate')

#: The flip as an op of the pool, which it was before it became ``hflip_prob``: not in the default pool, accepted
#: in ``StrongAugment(ops=...)`` only when listed explicitly (then the separate flip is off).
LEGACY_HFLIP = 'HFlip'

#: Magnitude ranges ``(low, high)`` of Table 10, sampled uniformly per sample; ``None`` for ops without one.
#: Units: Solarize threshold on [0, 1] images; Posterize bits (integers, both ends included); enhance factors
#: (1 is the identity, PIL ``ImageEnhance`` semantics); shear and rotate in degrees; translate as a fraction of
#: the image width (X) or height (Y).
TABLE10_MAGNITUDES: Dict[str, Optional[Tuple[float, float]]] = dict(
    AutoContrast=None,
    Equalize=None,
    Invert=None,
    Solarize=(0.1, 1.0),
    Posterize=(4, 8),
    Saturation=(0.1, 1.9),
    Contrast=(0.1, 1.9),
    Brightness=(0.1, 1.9),
    Sharpness=(0.1, 1.9),
    ShearX=(-17.0, 17.0),
    ShearY=(-17.0, 17.0),
    TranslateX=(-0.15, 0.15),
    TranslateY=(-0.15, 0.15),
    Rotate=(-30.0, 30.0),
)

_INTEGER_OPS = ('Posterize', )
#: ``StrongAugment(op_draw=...)``: the operations drawn once per batch (the authors' code) or per sample
OP_DRAWS = ('batch', 'sample')

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


_PHOTOMETRIC_FNS: Dict[str, Callable[[Tensor, Tensor], Tensor]] = dict(
    AutoContrast=auto_contrast,
    Equalize=lambda x, m: KE.equalize(x),
    Invert=lambda x, m: KE.invert(x),
    Solarize=lambda x, m: KE.solarize(x, m),  # invert the pixels >= threshold m (per sample)
    Posterize=lambda x, m: KE.posterize(x, m.round().long()),  # keep m bits of the 8-bit level
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
    """Horizontal flip ``x' = W - 1 - x`` (``u' = W - u`` in box coordinates): ``(B,)`` ignored -> ``(B, 3, 3)``."""
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _linear_about_centre(-one, zero, zero, one, height, width)


_GEOMETRIC_FNS: Dict[str, Callable[[Tensor, int, int], Tensor]] = dict(
    ShearX=shear_x_matrix,
    ShearY=shear_y_matrix,
    TranslateX=translate_x_matrix,
    TranslateY=translate_y_matrix,
    Rotate=rotate_matrix,
    HFlip=hflip_matrix,  # only for an explicit ``ops=[..., 'HFlip']``; the default flip is ``hflip_prob``
)


def _cutout_size(frac: Tensor, height: int, width: int, low: float, high: float) -> Tuple[Tensor, Tensor]:
    """Cutout rectangle sides: the image's aspect ratio, area ``frac * H * W``, in whole pixels.

    The width is rounded within ``[low * H * W / h, high * H * W / h]`` so the pixel area stays a fraction in
    ``[low, high]`` of the image despite rounding (possible whenever that interval holds an integer, i.e. for
    images at least ``1 / (high - low)`` pixels wide).

    Args:
        frac: ``(B,)`` area fractions in ``[low, high]``.
        height: image height (pixels).
        width: image width (pixels).
        low: smallest allowed area fraction.
        high: largest allowed area fraction.

    Returns:
        ``(B,)`` int64 heights and ``(B,)`` int64 widths, at least 1 and at most ``H`` and ``W``.
    """
    area = float(height * width)
    ch = (frac.sqrt() * height).round().clamp(1, height)
    cw = (frac * area / ch).round()
    cw = torch.minimum(torch.maximum(cw, torch.ceil(low * area / ch - 1e-6)), torch.floor(high * area / ch + 1e-6))
    return ch.long(), cw.clamp(1, width).long()


@MODELS.register_module()
class StrongAugment(nn.Module):
    """RandAugment (Table 10), a random horizontal flip and Cutout on a batch.

    Order, as in the authors' code (``BatchRandAugment``): the ``num_ops`` drawn ops, then the flip, then Cutout.
    ``num_ops`` distinct operations are drawn uniformly from ``ops``, once for the whole batch (``op_draw='batch'``,
    the authors' and the paper's "# augmentations per batch 2") or for every sample (``op_draw='sample'``), and
    every sample draws, for each, its own magnitude uniformly from its range (:data:`TABLE10_MAGNITUDES`, overridable with ``magnitudes``); then, with ``geometric=True``
    (Dense FixMatch), a horizontal flip with probability ``hflip_prob``, composed into the sample's matrix after
    the drawn affine ops (``M = F @ G``); then a Cutout rectangle with the image's aspect ratio covering a fraction
    ``U(cutout)`` of the image area, fully inside the image, filled with ``fill``. With ``geometric=False``
    (FixMatch*) the affine ops are removed from the pool and there is no flip, so the images' geometry is
    unchanged and every matrix is the identity; Cutout still applies (it is not a * op).

    The default pool is :data:`PHOTOMETRIC_OPS` + :data:`GEOMETRIC_OPS` (14 ops, 9 of them photometric) with
    ``geometric=True`` and :data:`PHOTOMETRIC_OPS` (9) with ``geometric=False``; the flip is not in it.

    Args:
        num_ops: operations drawn per batch or per sample (Table 10: 2 per batch), distinct within a sample.
        op_draw: ``'batch'`` (default): one draw of the ``num_ops`` operations for the batch of this call (on each
            process under DDP), as the authors' code; ``'sample'``: each sample draws its own operations.
        geometric: draw the affine ops and the flip too (Dense FixMatch) or neither (FixMatch*).
        cutout: ``(low, high)`` fraction of the image area to cut out, or ``None`` for no Cutout.
        fill: value (one, or one per RGB channel) of the Cutout region and of the area the warp brings in from
            outside the weak view, on the ``[0, 1]`` scale.
        ops: names of the operations to draw from (default all of :data:`PHOTOMETRIC_OPS` and
            :data:`GEOMETRIC_OPS`); with ``geometric=False`` the geometric ones are removed from it. ``'HFlip'``
            (the flip as a pool op, drawn like the others, as this class did before ``hflip_prob``) is accepted
            only when listed here explicitly; the separate flip is then off by default.
        magnitudes: ``{op name: (low, high)}`` overriding ranges of :data:`TABLE10_MAGNITUDES`.
        hflip_prob: probability that a sample is flipped horizontally after its drawn ops. ``None`` (default):
            0.5, the authors' ``RandomHorizontalFlip()``, or 0 when ``'HFlip'`` is listed in ``ops``. Forced to 0
            with ``geometric=False`` (FixMatch* moves no geometry, like the affine ops it removes).

    Raises:
        ValueError: unknown or duplicate ops, a bad ``cutout`` range, ``hflip_prob`` outside ``[0, 1]``, or
            ``'HFlip'`` in ``ops`` together with a nonzero ``hflip_prob`` (a sample could be flipped twice).

    Example:
        >>> aug = StrongAugment()
        >>> imgs = torch.rand(4, 3, 32, 48)
        >>> strong, matrices = aug(imgs, generator=torch.Generator().manual_seed(0))
        >>> strong.shape, matrices.shape
        (torch.Size([4, 3, 32, 48]), torch.Size([4, 3, 3]))
    """

    def __init__(self,
                 num_ops: int = 2,
                 op_draw: str = 'batch',
                 geometric: bool = True,
                 cutout: Optional[Tuple[float, float]] = (0.1, 0.3),
                 fill: Union[float, Sequence[float]] = 0.5,
                 ops: Optional[Sequence[str]] = None,
                 magnitudes: Optional[Dict[str, Tuple[float, float]]] = None,
                 hflip_prob: Optional[float] = None) -> None:
        super().__init__()
        if op_draw not in OP_DRAWS:
            raise ValueError(f'op_draw must be one of {OP_DRAWS}, got {op_draw!r}')
        ops = tuple(PHOTOMETRIC_OPS + GEOMETRIC_OPS) if ops is None else tuple(ops)
        known = tuple(TABLE10_MAGNITUDES) + (LEGACY_HFLIP, )
        unknown = [op for op in ops if op not in known]
        if unknown:
            raise ValueError(f'unknown ops {unknown}; choose from {list(TABLE10_MAGNITUDES)} (the horizontal flip '
                             f'is not a pool op: it is hflip_prob)')
        legacy_flip = LEGACY_HFLIP in ops
        if hflip_prob is None:
            hflip_prob = 0.0 if legacy_flip else 0.5
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f'hflip_prob must be in [0, 1], got {hflip_prob}')
        if legacy_flip and hflip_prob > 0:
            raise ValueError(f"'{LEGACY_HFLIP}' in ops and hflip_prob={hflip_prob}: the horizontal flip is "
                             f"hflip_prob now (applied after the drawn ops, as in the authors' code); drop "
                             f"'{LEGACY_HFLIP}' from ops, or set hflip_prob=0 to keep it a pool op")
        if not geometric:
            ops = tuple(op for op in ops if op not in _GEOMETRIC_FNS)
            hflip_prob = 0.0
        if len(set(ops)) != len(ops):
            raise ValueError(f'duplicate ops in {ops}')
        if cutout is not None and not 0 <= cutout[0] <= cutout[1] <= 1:
            raise ValueError(f'cutout must be (low, high) fractions with 0 <= low <= high <= 1, got {cutout}')
        ranges = dict(TABLE10_MAGNITUDES, **{LEGACY_HFLIP: None})
        ranges.update(magnitudes or {})
        self.ops = ops
        self.op_draw = op_draw
        self.num_ops = min(num_ops, len(ops))
        self.geometric = geometric
        self.hflip_prob = float(hflip_prob)
        self.cutout = None if cutout is None else (float(cutout[0]), float(cutout[1]))
        self.fill = tuple(float(f) for f in fill) if isinstance(fill, Sequence) else (float(fill), ) * 3
        self.magnitude_ranges = {op: ranges[op] for op in ops}

    def extra_repr(self) -> str:
        # order of application: num_ops ops drawn from ops, then the flip, then Cutout
        return (f'num_ops={self.num_ops}, op_draw={self.op_draw}, ops={self.ops}, hflip_prob={self.hflip_prob}, cutout={self.cutout}, '
                f'fill={self.fill}')

    # -------------------------------------------------------------------------------------------- sampling ----

    def _range_table(self, device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
        """``(K,)`` low, high and is-integer of each op's magnitude range (0 for ops without a magnitude)."""
        rng = [self.magnitude_ranges[op] or (0.0, 0.0) for op in self.ops]
        low = torch.tensor([float(r[0]) for r in rng], dtype=torch.float32, device=device)
        high = torch.tensor([float(r[1]) for r in rng], dtype=torch.float32, device=device)
        integer = torch.tensor([op in _INTEGER_OPS for op in self.ops], dtype=torch.bool, device=device)
        return low, high, integer

    def sample_params(self,
                      batch_size: int,
                      height: int,
                      width: int,
                      device: Union[str, torch.device, None] = None,
                      generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        """Draw every sample's operations, magnitudes, flip and Cutout rectangle; nothing touches an image.

        Draws happen on ``generator``'s device when one is given (the same seed then gives the same parameters
        on any ``device``), else on ``device``.

        Args:
            batch_size: ``B``.
            height: image height ``H`` (pixels).
            width: image width ``W`` (pixels).
            device: where the returned tensors live.
            generator: random generator for reproducible draws.

        Returns:
            dict of per-sample tensors on ``device``:

            * ``op_idx``: ``(B, num_ops)`` int64 indices into ``self.ops``, distinct within a row (every row the
              same with ``op_draw='batch'``); slot 0 is applied first.
            * ``magnitudes``: ``(B, num_ops)`` float32, the magnitude of ``op_idx``'s op in that slot, in the units
              of :data:`TABLE10_MAGNITUDES` (0 for ops without a magnitude).
            * ``cutout``: ``(B, 4)`` int64 ``x1, y1, x2, y2`` pixel indices of the Cutout rectangle, half-open
              (columns ``x1 <= j < x2``); all zeros (empty) when Cutout is off.
            * ``cutout_frac``: ``(B,)`` float32 drawn area fraction (0 when Cutout is off).
            * ``hflip``: ``(B,)`` bool, flip the sample horizontally after its ``op_idx`` ops (probability
              ``hflip_prob``, independent of the other draws); all ``False`` when ``hflip_prob`` is 0, e.g. with
              ``geometric=False``.
        """
        draw_device = generator.device if generator is not None else device

        def rand(*shape: int) -> Tensor:
            return torch.rand(shape, generator=generator, device=draw_device)

        k = len(self.ops)
        rows = 1 if self.op_draw == 'batch' else batch_size
        op_idx = rand(rows, k).argsort(dim=1)[:, :self.num_ops].expand(batch_size, -1).contiguous()  # distinct
        low, high, integer = self._range_table(op_idx.device)
        low, high, integer = low[op_idx], high[op_idx], integer[op_idx]
        u = rand(batch_size, self.num_ops)
        continuous = low + u * (high - low)
        discrete = torch.minimum(torch.floor(low + u * (high - low + 1)), high)  # uniform over low..high
        magnitudes = torch.where(integer, discrete, continuous)

        cutout = torch.zeros(batch_size, 4, dtype=torch.long, device=op_idx.device)
        frac = torch.zeros(batch_size, device=op_idx.device)
        if self.cutout is not None:
            low, high = self.cutout
            frac = low + rand(batch_size) * (high - low)
            ch, cw = _cutout_size(frac, height, width, low, high)
            y1 = (rand(batch_size) * (height - ch + 1)).floor().long().clamp(max=height - ch)
            x1 = (rand(batch_size) * (width - cw + 1)).floor().long().clamp(max=width - cw)
            cutout = torch.stack([x1, y1, x1 + cw, y1 + ch], dim=1)
        hflip = torch.zeros(batch_size, dtype=torch.bool, device=op_idx.device)
        if self.hflip_prob > 0:  # drawn last: the other draws are those of the same seed without the flip
            hflip = rand(batch_size) < self.hflip_prob
        params = dict(op_idx=op_idx, magnitudes=magnitudes, cutout=cutout, cutout_frac=frac, hflip=hflip)
        return {key: value.to(device) for key, value in params.items()}

    # -------------------------------------------------------------------------------------------- applying ----

    def compute_matrices(self, params: Dict[str, Tensor], height: int, width: int) -> Tensor:
        """Compose each sample's geometric ops, in drawn order, then its flip, into one matrix.

        ``M = F @ G_num_ops @ ... @ G_1`` where ``G_s`` is the slot-``s`` op's matrix (the identity for a
        photometric op) and ``F`` the horizontal flip ``x' = W - 1 - x`` when ``params['hflip']`` (else the
        identity): the flip comes after the drawn ops, as in the authors' code.

        Args:
            params: output of :meth:`sample_params` (a dict without ``hflip`` means no flip).
            height: image height ``H`` (pixels).
            width: image width ``W`` (pixels).

        Returns:
            ``(B, 3, 3)`` float32 weak-to-strong transforms in pixel-index coordinates; exactly the identity for
            samples that drew no geometric op and no flip.
        """
        op_idx, mags = params['op_idx'], params['magnitudes'].float()
        eye = torch.eye(3, device=op_idx.device).expand(op_idx.shape[0], 3, 3)
        matrices = eye
        for slot in range(op_idx.shape[1]):
            for k, op in enumerate(self.ops):
                if op not in _GEOMETRIC_FNS:
                    continue
                chosen = (op_idx[:, slot] == k).view(-1, 1, 1)
                step = torch.where(chosen, _GEOMETRIC_FNS[op](mags[:, slot], height, width), eye)
                matrices = step @ matrices
        hflip = params.get('hflip')
        if hflip is not None:  # composed last: the flip follows the drawn ops
            flip = hflip_matrix(torch.zeros(op_idx.shape[0], device=op_idx.device), height, width)
            matrices = torch.where(hflip.to(op_idx.device, torch.bool).view(-1, 1, 1), flip @ matrices, matrices)
        return matrices.contiguous()

    def _plan(self, params: Dict[str, Tensor], height: int, width: int, device: torch.device) -> Dict:
        """Every data-dependent decision of :meth:`apply_params`, taken on the host from the (small) parameters.

        Which samples drew which op, and which matrices are not the identity, decide tensor shapes; reading
        them from device tensors would cost one host-device sync each (about 20 per batch). The parameters are
        read on the host once instead (free when they were drawn there, as :meth:`forward` does), the matrices
        are composed there, and what the device needs goes over in two copies (``non_blocking`` from pinned
        memory on CUDA), so the image path issues no sync at all.

        Returns:
            dict with, on ``device``: ``order`` ``(num_ops, B)`` int64, each slot's sample indices sorted by op;
            ``magnitudes`` ``(B, num_ops)`` float32; ``cutout`` ``(B, 4)`` int64; ``matrices`` ``(B, 3, 3)``
            float32; ``warp_idx`` ``(n,)`` int64 samples to warp. On the host: ``groups``, per slot a list of
            ``(op name, start, end)`` slices of ``order`` for the photometric ops drawn there.
        """
        op_idx = params['op_idx'].cpu()
        mags = params['magnitudes'].cpu().float()
        cutout = params['cutout'].cpu().long()
        batch, num_ops = op_idx.shape
        host = dict(op_idx=op_idx, magnitudes=mags)
        if 'hflip' in params:
            host['hflip'] = params['hflip'].cpu()
        with torch.autocast(device_type='cpu', enabled=False):  # float32 matrices under CPU autocast too
            matrices = self.compute_matrices(host, height, width)
        warp_idx = (matrices != torch.eye(3)).flatten(1).any(dim=1).nonzero().squeeze(1)
        order = op_idx.t().argsort(dim=1, stable=True)  # (num_ops, B)
        groups = []
        for slot in range(num_ops):
            ends = torch.bincount(op_idx[:, slot], minlength=len(self.ops)).cumsum(0).tolist()
            starts = [0] + ends[:-1]
            groups.append([(op, starts[k], ends[k]) for k, op in enumerate(self.ops)
                           if op in _PHOTOMETRIC_FNS and ends[k] > starts[k]])
        longs = torch.cat([order.reshape(-1), cutout.reshape(-1), warp_idx])
        floats = torch.cat([mags.reshape(-1), matrices.reshape(-1)])
        if device.type == 'cuda':
            longs, floats = longs.pin_memory(), floats.pin_memory()
        longs = longs.to(device, non_blocking=True)
        floats = floats.to(device, non_blocking=True)
        order_d, cutout_d, warp_d = longs.split([num_ops * batch, 4 * batch, warp_idx.numel()])
        mags_d, matrices_d = floats.split([batch * num_ops, batch * 9])
        return dict(order=order_d.view(num_ops, batch), cutout=cutout_d.view(batch, 4), warp_idx=warp_d,
                    magnitudes=mags_d.view(batch, num_ops), matrices=matrices_d.view(batch, 3, 3), groups=groups)

    def _photometric(self, x: Tensor, plan: Dict) -> Tensor:
        """Apply each slot's photometric op to the sub-batch that drew it, in place on the float32 ``x``."""
        for slot, groups in enumerate(plan['groups']):
            for op, start, end in groups:
                idx = plan['order'][slot, start:end]
                x.index_copy_(0, idx, _PHOTOMETRIC_FNS[op](x.index_select(0, idx), plan['magnitudes'][idx, slot]))
        return x

    def _fill(self, x: Tensor) -> Tensor:
        return torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)

    def _warp(self, x: Tensor, matrices: Tensor, idx: Tensor) -> Tensor:
        """One batched bilinear ``warp_affine`` of the samples ``idx`` (those whose matrix is not the identity).

        The area from outside the weak view gets ``fill``: ``warp(x - fill) + fill`` with zero padding equals
        kornia's ``padding_mode='fill'`` (the warp is linear) at the cost of one ``grid_sample`` instead of two.
        """
        if idx.numel() == 0:
            return x
        fill = self._fill(x)
        warped = warp_affine(x.index_select(0, idx) - fill, matrices.index_select(0, idx)[:, :2].to(x.dtype),
                             (x.shape[-2], x.shape[-1]), mode='bilinear', padding_mode='zeros', align_corners=True)
        return x.index_copy_(0, idx, (warped + fill).clamp_(0.0, 1.0))

    def _cutout(self, x: Tensor, boxes: Tensor) -> Tensor:
        """Fill each sample's Cutout rectangle ``boxes`` ``(B, 4)`` with ``fill``; ``(B, 3, H, W)`` in place."""
        if self.cutout is None:
            return x
        x1, y1, x2, y2 = boxes.unbind(dim=1)
        cols = torch.arange(x.shape[-1], device=x.device)
        rows = torch.arange(x.shape[-2], device=x.device)
        in_cols = (cols >= x1[:, None]) & (cols < x2[:, None])  # (B, W)
        in_rows = (rows >= y1[:, None]) & (rows < y2[:, None])  # (B, H)
        inside = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
        for channel, value in enumerate(self.fill):
            x[:, channel].masked_fill_(inside, value)
        return x

    def apply_params(self, imgs: Tensor, params: Dict[str, Tensor]) -> Tuple[Tensor, Tensor]:
        """Apply drawn parameters: photometric ops, one warp (drawn affine ops, then the flip), Cutout.

        Computation runs in float32 with autocast disabled whatever the input dtype (the histogram and
        quantisation ops need it); the result is cast back.

        Args:
            imgs: ``(B, 3, H, W)`` unnormalised RGB in ``[0, 1]``, float32/float16/bfloat16, any device. Not
                modified.
            params: output of :meth:`sample_params` for this ``B, H, W``.

        Returns:
            ``imgs_strong`` ``(B, 3, H, W)`` with ``imgs``' dtype and device, and ``matrices`` ``(B, 3, 3)``
            float32 weak-to-strong transforms in pixel-index coordinates (see :meth:`compute_matrices`).
        """
        if imgs.dim() != 4 or imgs.shape[1] != 3:
            raise ValueError(f'expected imgs (B, 3, H, W), got {tuple(imgs.shape)}')
        if params['op_idx'].shape[0] != imgs.shape[0]:
            raise ValueError(f"params are for {params['op_idx'].shape[0]} samples, imgs has {imgs.shape[0]}")
        height, width = imgs.shape[-2:]
        plan = self._plan(params, height, width, imgs.device)
        device_type = imgs.device.type
        no_autocast = torch.autocast(device_type, enabled=False) if torch.amp.is_autocast_available(device_type) \
            else nullcontext()
        with no_autocast:
            x = imgs.to(torch.float32, copy=True).clamp_(0.0, 1.0)
            x = self._photometric(x, plan)
            x = self._warp(x, plan['matrices'], plan['warp_idx'])
            x = self._cutout(x, plan['cutout'])
        return x.to(imgs.dtype), plan['matrices']

    def forward(self, imgs: Tensor, generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor]:
        """Draw parameters for ``imgs`` and apply them.

        Args:
            imgs: ``(B, 3, H, W)`` unnormalised RGB in ``[0, 1]`` (the weak views), any float dtype.
            generator: random generator for reproducible draws.

        Returns:
            ``imgs_strong`` ``(B, 3, H, W)`` (``imgs``' dtype) and ``matrices`` ``(B, 3, 3)`` float32 mapping
            weak-view pixel-index coordinates to strong-view ones.
        """
        # drawn on the host (or on ``generator``'s device): apply_params reads them there without a device sync
        params = self.sample_params(imgs.shape[0], imgs.shape[-2], imgs.shape[-1], 'cpu', generator)
        return self.apply_params(imgs, params)
