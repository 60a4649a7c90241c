"""Parameter sampling of :class:`~mtssl_mm.augmentation.StrongAugment`: the Table-10 tables and the draws.

Nothing here touches an image. :func:`sample_strong_params` draws, for a batch of ``B`` images of ``H x W``
pixels, every sample's operations, magnitudes, Cutout rectangle and flip; :mod:`.strong_ops` holds what the
operations do and :mod:`.strong_augment` applies them (kornia's split of ``random_generator/`` and
``augmentation/``).
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    'PHOTOMETRIC_OPS', 'GEOMETRIC_OPS', 'TABLE10_MAGNITUDES', 'INTEGER_OPS', 'OP_DRAWS', 'magnitude_table',
    'cutout_size', 'sample_strong_params'
]

#: Operations of the paper's Table 10 that act on pixel values only (the unstarred ones): FixMatch* uses these.
PHOTOMETRIC_OPS = ('AutoContrast', 'Equalize', 'Invert', 'Solarize', 'Posterize', 'Saturation', 'Contrast',
                   'Brightness', 'Sharpness')
#: Operations of Table 10 marked * (affine) in the RandAugment pool: moved onto the labels by Dense FixMatch,
#: dropped by FixMatch*. The horizontal flip is not among them: as in the authors' code it is applied after the
#: drawn ops with probability ``StrongAugment(hflip_prob=...)`` (Dense FixMatch only).
GEOMETRIC_OPS = ('ShearX', 'ShearY', 'TranslateX', 'TranslateY', 'Rotate')

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

#: Operations whose magnitude is an integer, drawn uniformly over ``low, low + 1, ..., high``.
INTEGER_OPS = ('Posterize', )
#: ``StrongAugment(op_draw=...)``: the operations drawn once per batch (the authors' code) or per sample
OP_DRAWS = ('batch', 'sample')


def magnitude_table(ops: Sequence[str],
                    magnitude_ranges: Mapping[str, Optional[Tuple[float, float]]],
                    device: Union[str, torch.device, None] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Each op's magnitude range as tensors, to be indexed with drawn op indices.

    Args:
        ops: the ``K`` names of the pool, in the order op indices refer to.
        magnitude_ranges: ``{op name: (low, high) or None}`` for every op of ``ops``.
        device: where the tables live.

    Returns:
        ``(K,)`` float32 lows, ``(K,)`` float32 highs (both 0 for ops without a magnitude) and ``(K,)`` bool
        is-integer flags (:data:`INTEGER_OPS`).
    """
    rng = [magnitude_ranges[op] or (0.0, 0.0) for op in ops]
    low = torch.tensor([float(r[0]) for r in rng], dtype=torch.float32, device=device)
    high = torch.tensor([float(r[1]) for r in rng], dtype=torch.float32, device=device)
    integer = torch.tensor([op in INTEGER_OPS for op in ops], dtype=torch.bool, device=device)
    return low, high, integer


def cutout_size(frac: Tensor, height: int, width: int, low: float, high: float) -> Tuple[Tensor, Tensor]:
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


def sample_strong_params(batch_size: int,
                         height: int,
                         width: int,
                         ops: Sequence[str],
                         num_ops: int = 2,
                         op_draw: str = 'batch',
                         magnitude_ranges: Optional[Mapping[str, Optional[Tuple[float, float]]]] = None,
                         cutout: Optional[Tuple[float, float]] = (0.1, 0.3),
                         hflip_prob: float = 0.5,
                         device: Union[str, torch.device, None] = None,
                         generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
    """Draw every sample's operations, magnitudes, Cutout rectangle and flip.

    The draws, in this order (a fixed order: the same generator state gives the same parameters): the
    operations (``num_ops`` distinct ones out of ``ops``, once for the batch or per sample), one uniform per
    sample and slot for the magnitudes, the Cutout area and corner, then the flip, drawn last so that the other
    draws of a seed do not depend on ``hflip_prob``. Draws happen on ``generator``'s device when one is given
    (the same seed then gives the same parameters on any ``device``), else on ``device``.

    Args:
        batch_size: ``B``.
        height: image height ``H`` (pixels).
        width: image width ``W`` (pixels).
        ops: the ``K`` operation names of the pool; ``op_idx`` indexes it.
        num_ops: operations per sample, at most ``K``.
        op_draw: ``'batch'``: one draw of the operations, shared by every sample; ``'sample'``: one per sample.
        magnitude_ranges: ``{op name: (low, high) or None}`` for every op of ``ops``; default
            :data:`TABLE10_MAGNITUDES`.
        cutout: ``(low, high)`` fraction of the image area to cut out, or ``None`` for no Cutout.
        hflip_prob: probability that a sample is flipped horizontally after its ops.
        device: where the returned tensors live.
        generator: random generator for reproducible draws.

    Returns:
        dict of per-sample tensors on ``device``:

        * ``op_idx``: ``(B, num_ops)`` int64 indices into ``ops``, distinct within a row (every row the same with
          ``op_draw='batch'``); slot 0 is applied first.
        * ``magnitudes``: ``(B, num_ops)`` float32, the magnitude of ``op_idx``'s op in that slot, in the units of
          :data:`TABLE10_MAGNITUDES` (0 for ops without a magnitude).
        * ``cutout``: ``(B, 4)`` int64 ``x1, y1, x2, y2`` pixel indices of the Cutout rectangle, half-open
          (columns ``x1 <= j < x2``); all zeros (empty) when Cutout is off.
        * ``cutout_frac``: ``(B,)`` float32 drawn area fraction (0 when Cutout is off).
        * ``hflip``: ``(B,)`` bool, flip the sample horizontally after its ``op_idx`` ops (probability
          ``hflip_prob``, independent of the other draws); all ``False`` when ``hflip_prob`` is 0.

    Example:
        >>> p = sample_strong_params(4, 32, 48, ops=GEOMETRIC_OPS, generator=torch.Generator().manual_seed(0))
        >>> p['op_idx'].shape, p['magnitudes'].shape, p['cutout'].shape, p['hflip'].shape
        (torch.Size([4, 2]), torch.Size([4, 2]), torch.Size([4, 4]), torch.Size([4]))
    """
    if op_draw not in OP_DRAWS:
        raise ValueError(f'op_draw must be one of {OP_DRAWS}, got {op_draw!r}')
    magnitude_ranges = TABLE10_MAGNITUDES if magnitude_ranges is None else magnitude_ranges
    num_ops = min(num_ops, len(ops))
    draw_device = generator.device if generator is not None else device

    def rand(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator, device=draw_device)

    rows = 1 if op_draw == 'batch' else batch_size
    op_idx = rand(rows, len(ops)).argsort(dim=1)[:, :num_ops].expand(batch_size, -1).contiguous()  # distinct
    low, high, integer = magnitude_table(ops, magnitude_ranges, op_idx.device)
    low, high, integer = low[op_idx], high[op_idx], integer[op_idx]
    u = rand(batch_size, num_ops)
    continuous = low + u * (high - low)
    discrete = torch.minimum(torch.floor(low + u * (high - low + 1)), high)  # uniform over low..high
    magnitudes = torch.where(integer, discrete, continuous)

    boxes = torch.zeros(batch_size, 4, dtype=torch.long, device=op_idx.device)
    frac = torch.zeros(batch_size, device=op_idx.device)
    if cutout is not None:
        low, high = cutout
        frac = low + rand(batch_size) * (high - low)
        ch, cw = cutout_size(frac, height, width, low, high)
        y1 = (rand(batch_size) * (height - ch + 1)).floor().long().clamp(max=height - ch)
        x1 = (rand(batch_size) * (width - cw + 1)).floor().long().clamp(max=width - cw)
        boxes = torch.stack([x1, y1, x1 + cw, y1 + ch], dim=1)
    hflip = torch.zeros(batch_size, dtype=torch.bool, device=op_idx.device)
    if hflip_prob > 0:  # drawn last: the other draws are those of the same seed without the flip
        hflip = rand(batch_size) < hflip_prob
    params = dict(op_idx=op_idx, magnitudes=magnitudes, cutout=boxes, cutout_frac=frac, hflip=hflip)
    return {key: value.to(device) for key, value in params.items()}
