"""Anchors generated once per feature-map size, not once per head call."""
from collections import OrderedDict
from typing import Hashable, List, Tuple

import torch
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import TASK_UTILS
from torch import Tensor


@TASK_UTILS.register_module()
class CachedAnchorGenerator(AnchorGenerator):
    """mmdet's :class:`AnchorGenerator` that remembers its anchors and valid flags.

    A semi-supervised step asks for the same anchors three times (teacher prediction, supervised loss,
    unsupervised loss) and every step asks again for the same crop size. The anchors depend only on the
    feature-map sizes, dtype and device, and the valid flags only on the sizes, the padded image shape and
    the device, so both are kept in small LRU tables keyed by those. The returned tensors are shared: mmdet's
    heads only read them (indexing and ``cat`` copy), and callers must not modify them in place.

    Args:
        cache_size (int): entries kept per table (distinct input sizes, e.g. validation images of several
            shapes). Defaults to 16.
        **kwargs: see :class:`mmdet.models.task_modules.AnchorGenerator`.
    """

    def __init__(self, *args, cache_size: int = 16, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if cache_size < 1:
            raise ValueError(f'cache_size must be >= 1, got {cache_size}')
        self.cache_size = cache_size
        self._priors: 'OrderedDict[Hashable, List[Tensor]]' = OrderedDict()
        self._flags: 'OrderedDict[Hashable, List[Tensor]]' = OrderedDict()

    def _lookup(self, table: OrderedDict, key: Hashable, make) -> List[Tensor]:
        if key in table:
            table.move_to_end(key)
            return list(table[key])
        value = make()
        table[key] = value
        if len(table) > self.cache_size:
            table.popitem(last=False)
        return list(value)

    def grid_priors(self,
                    featmap_sizes: List[Tuple[int, int]],
                    dtype: torch.dtype = torch.float32,
                    device='cuda') -> List[Tensor]:
        """Per level ``(H_l * W_l * A, 4)`` anchors, ``x1y1x2y2`` in input pixels (see mmdet)."""
        key = (tuple(tuple(int(v) for v in s) for s in featmap_sizes), dtype, str(torch.device(device)))
        return self._lookup(
            self._priors, key,
            lambda: super(CachedAnchorGenerator, self).grid_priors(featmap_sizes, dtype=dtype, device=device))

    def valid_flags(self, featmap_sizes: List[Tuple[int, int]], pad_shape: Tuple, device='cuda') -> List[Tensor]:
        """Per level ``(H_l * W_l * A,)`` bool: the anchor's centre cell lies inside ``pad_shape`` (see mmdet)."""
        key = (tuple(tuple(int(v) for v in s)
                     for s in featmap_sizes), tuple(int(v) for v in pad_shape[:2]), str(torch.device(device)))
        return self._lookup(
            self._flags, key,
            lambda: super(CachedAnchorGenerator, self).valid_flags(featmap_sizes, pad_shape, device=device))
