"""The strong augmentation ``A`` of FixMatch* and Dense FixMatch, batch-wise on the device: applying it.

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

The work is split as kornia splits its augmentations: :mod:`.strong_params` samples the parameters (and holds
the Table-10 tables), :mod:`.strong_ops` holds the operations (photometric functions, per-op ``(B, 3, 3)``
matrices, Cutout), and this module applies them to a batch.

Call flow of :meth:`StrongAugment.forward`::

    imgs (B, 3, H, W) in [0, 1], any float dtype
     |
     |  sample_params(B, H, W), on the host  ->  op_idx (B, num_ops), magnitudes (B, num_ops), cutout (B, 4),
     |  (strong_params.sample_strong_params)     hflip (B,) bool
     v
    apply_params(imgs, params):
     |- _plan, on the host: compute_matrices (each sample's geometric ops, in drawn order, then its flip, composed
     |  into one (3, 3) matrix ``F^hflip @ G_last @ ... @ G_first``, from strong_ops.GEOMETRIC_FNS and
     |  hflip_matrix), which samples drew which op, which matrices are not the identity; two copies to the
     |  device, no sync (the image path never reads a device value)
     |  then on the device, in float32 with autocast off:
     |- photometric ops (strong_ops.PHOTOMETRIC_FNS): for slot in num_ops, for op in the photometric ops: the op
     |  on the sub-batch that drew it there (index_select -> op -> index_copy_); the loop count does not depend
     |  on B
     |- one batched kornia warp_affine (bilinear, padding ``fill``) of the samples whose matrix is not identity
     |  (the drawn affine ops and the flip together)
     '- Cutout on the strong image, last (strong_ops.cutout_; not a label transform)
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
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from kornia.geometry.transform import warp_affine
from mmdet.registry import MODELS
from torch import Tensor, nn

from .strong_ops import GEOMETRIC_FNS, PHOTOMETRIC_FNS, cutout_, hflip_matrix
from .strong_params import GEOMETRIC_OPS, OP_DRAWS, PHOTOMETRIC_OPS, TABLE10_MAGNITUDES, sample_strong_params

__all__ = ['StrongAugment', 'PHOTOMETRIC_OPS', 'GEOMETRIC_OPS', 'TABLE10_MAGNITUDES']

#: The name the flip had when it was an op of the pool; it is ``hflip_prob`` now and naming it in ``ops`` is an error.
_REMOVED_HFLIP_OP = 'HFlip'


@MODELS.register_module()
class StrongAugment(nn.Module):
    """RandAugment (Table 10), a random horizontal flip and Cutout on a batch.

    Order, as in the authors' code (``BatchRandAugment``): the ``num_ops`` drawn ops, then the flip, then Cutout.
    ``num_ops`` distinct operations are drawn uniformly from ``ops``, once for the whole batch (``op_draw='batch'``,
    the authors' and the paper's "# augmentations per batch 2") or for every sample (``op_draw='sample'``), and
    every sample draws, for each, its own magnitude uniformly from its range (:data:`TABLE10_MAGNITUDES`,
    overridable with ``magnitudes``); then, with ``geometric=True`` (Dense FixMatch), a horizontal flip with
    probability ``hflip_prob``, composed into the sample's matrix after the drawn affine ops (``M = F @ G``); then
    a Cutout rectangle with the image's aspect ratio covering a fraction ``U(cutout)`` of the image area, fully
    inside the image, filled with ``fill``. With ``geometric=False`` (FixMatch*) the affine ops are removed from
    the pool and there is no flip, so the images' geometry is unchanged and every matrix is the identity; Cutout
    still applies (it is not a * op).

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
            :data:`GEOMETRIC_OPS`); with ``geometric=False`` the geometric ones are removed from it. The flip is
            not a pool op (``'HFlip'`` is an error): it is ``hflip_prob``.
        magnitudes: ``{op name: (low, high)}`` overriding ranges of :data:`TABLE10_MAGNITUDES`.
        hflip_prob: probability that a sample is flipped horizontally after its drawn ops. ``None`` (default):
            0.5, the authors' ``RandomHorizontalFlip()``. Forced to 0 with ``geometric=False`` (FixMatch* moves no
            geometry, like the affine ops it removes).

    Raises:
        ValueError: unknown or duplicate ops, ``'HFlip'`` in ``ops`` (the flip is ``hflip_prob``), a bad
            ``op_draw``, a bad ``cutout`` range or ``hflip_prob`` outside ``[0, 1]``.

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
        if _REMOVED_HFLIP_OP in ops:
            raise ValueError(f"'{_REMOVED_HFLIP_OP}' is not an op of the pool: the horizontal flip is hflip_prob "
                             f"(each sample flipped after its drawn ops, as in the authors' code; 0.5 by default, "
                             f'1.0 flips every sample); drop it from ops')
        unknown = [op for op in ops if op not in TABLE10_MAGNITUDES]
        if unknown:
            raise ValueError(f'unknown ops {unknown}; choose from {list(TABLE10_MAGNITUDES)} (the horizontal flip '
                             f'is not a pool op: it is hflip_prob)')
        hflip_prob = 0.5 if hflip_prob is None else hflip_prob
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f'hflip_prob must be in [0, 1], got {hflip_prob}')
        if not geometric:
            ops = tuple(op for op in ops if op not in GEOMETRIC_OPS)
            hflip_prob = 0.0
        if len(set(ops)) != len(ops):
            raise ValueError(f'duplicate ops in {ops}')
        if cutout is not None and not 0 <= cutout[0] <= cutout[1] <= 1:
            raise ValueError(f'cutout must be (low, high) fractions with 0 <= low <= high <= 1, got {cutout}')
        ranges = dict(TABLE10_MAGNITUDES, **(magnitudes or {}))
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
        return (f'num_ops={self.num_ops}, op_draw={self.op_draw}, ops={self.ops}, hflip_prob={self.hflip_prob}, '
                f'cutout={self.cutout}, fill={self.fill}')

    # -------------------------------------------------------------------------------------------- sampling ----

    def sample_params(self,
                      batch_size: int,
                      height: int,
                      width: int,
                      device: Union[str, torch.device, None] = None,
                      generator: Optional[torch.Generator] = None) -> Dict[str, Tensor]:
        """Draw every sample's operations, magnitudes, flip and Cutout rectangle; nothing touches an image.

        :func:`~mtssl_mm.augmentation.strong_params.sample_strong_params` with this module's settings. Draws
        happen on ``generator``'s device when one is given (the same seed then gives the same parameters on any
        ``device``), else on ``device``.

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
        return sample_strong_params(
            batch_size,
            height,
            width,
            self.ops,
            num_ops=self.num_ops,
            op_draw=self.op_draw,
            magnitude_ranges=self.magnitude_ranges,
            cutout=self.cutout,
            hflip_prob=self.hflip_prob,
            device=device,
            generator=generator)

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
                if op not in GEOMETRIC_FNS:
                    continue
                chosen = (op_idx[:, slot] == k).view(-1, 1, 1)
                step = torch.where(chosen, GEOMETRIC_FNS[op](mags[:, slot], height, width), eye)
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
                           if op in PHOTOMETRIC_FNS and ends[k] > starts[k]])
        longs = torch.cat([order.reshape(-1), cutout.reshape(-1), warp_idx])
        floats = torch.cat([mags.reshape(-1), matrices.reshape(-1)])
        if device.type == 'cuda':
            longs, floats = longs.pin_memory(), floats.pin_memory()
        longs = longs.to(device, non_blocking=True)
        floats = floats.to(device, non_blocking=True)
        order_d, cutout_d, warp_d = longs.split([num_ops * batch, 4 * batch, warp_idx.numel()])
        mags_d, matrices_d = floats.split([batch * num_ops, batch * 9])
        return dict(
            order=order_d.view(num_ops, batch),
            cutout=cutout_d.view(batch, 4),
            warp_idx=warp_d,
            magnitudes=mags_d.view(batch, num_ops),
            matrices=matrices_d.view(batch, 3, 3),
            groups=groups)

    def _photometric(self, x: Tensor, plan: Dict) -> Tensor:
        """Apply each slot's photometric op to the sub-batch that drew it, in place on the float32 ``x``."""
        for slot, groups in enumerate(plan['groups']):
            for op, start, end in groups:
                idx = plan['order'][slot, start:end]
                x.index_copy_(0, idx, PHOTOMETRIC_FNS[op](x.index_select(0, idx), plan['magnitudes'][idx, slot]))
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
        warped = warp_affine(
            x.index_select(0, idx) - fill,
            matrices.index_select(0, idx)[:, :2].to(x.dtype), (x.shape[-2], x.shape[-1]),
            mode='bilinear',
            padding_mode='zeros',
            align_corners=True)
        return x.index_copy_(0, idx, (warped + fill).clamp_(0.0, 1.0))

    def _cutout(self, x: Tensor, boxes: Tensor) -> Tensor:
        """Fill each sample's Cutout rectangle ``boxes`` ``(B, 4)`` with ``fill``; ``(B, 3, H, W)`` in place."""
        return x if self.cutout is None else cutout_(x, boxes, self.fill)

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
