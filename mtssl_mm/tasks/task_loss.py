"""A task's loss as sums and a normaliser, and their normalisation over the global batch under DDP.

Eq. 3 and Eq. 4 average each task's loss over the mini-batch, and the paper's mini-batch (Table 10: 8, 8 + 8,
16) is the *global* one, spread over 8 GPUs at 1-2 images each. A per-GPU mean followed by DDP's gradient
average would weight a task by how its labels happen to fall on the GPUs (on BDD100K with 1 image per GPU, the
segmentation gradient would be scaled by the share of GPUs holding a seg label). So every task loss is computed
as a *sum* over its valid elements with the count of those elements beside it (:class:`TaskLoss`), and
:func:`normalise_globally` divides each sum by the count summed over ranks -- one ``all_reduce`` per step for all
tasks -- times the world size, which DDP's gradient average divides out again::

    rank r:   S_r (loss sum), N_r (valid elements)          loss_r = W * S_r / max(sum_r' N_r', 1)
    DDP:      grad = 1/W * sum_r grad(loss_r) = grad(sum_r S_r) / max(sum_r N_r, 1)
              = the gradient of one process on the whole global batch

The same holds without DDP (W = 1, no communication). mmdet's FCOS/ATSS heads do the same for their
positive-sample count with ``reduce_mean``.
"""
from dataclasses import dataclass
from typing import Dict, List, Union

import torch
from mmengine.dist import all_reduce, get_world_size

LossValue = Union[torch.Tensor, List[torch.Tensor]]


@dataclass
class TaskLoss:
    """Unnormalised losses of one task on one rank.

    Attributes:
        sums (dict): loss name -> sum over the valid elements of this rank's samples (a scalar tensor, or a list
            of them, one per feature level, as mmdet's dense heads return). Entries whose name does not contain
            ``'loss'`` (statistics such as ``num_labeled``) are passed through untouched.
        normaliser (torch.Tensor): scalar, the number of valid elements behind ``sums`` on this rank (labeled
            pixels, positive anchors, ...); 0 when the rank has none.
    """

    sums: Dict[str, LossValue]
    normaliser: torch.Tensor

    def mean(self) -> Dict[str, LossValue]:
        """The losses of this rank alone, each sum divided by ``max(normaliser, 1)`` (no communication)."""
        return _divide(self.sums, self.normaliser.float().clamp(min=1.0))


def _divide(sums: Dict[str, LossValue], denom: torch.Tensor) -> Dict[str, LossValue]:
    out = {}
    for key, value in sums.items():
        if 'loss' not in key:
            out[key] = value
        elif isinstance(value, (list, tuple)):
            out[key] = [v / denom for v in value]
        else:
            out[key] = value / denom
    return out


def normalise_globally(terms: Dict[str, TaskLoss]) -> Dict[str, Dict[str, LossValue]]:
    """Divide every term's sums by its normaliser summed over all ranks, scaled for DDP's gradient average.

    Every rank must call this once per step with the same keys in the same order (the tasks of the model, and
    for semi-supervised training their ``.sup``/``.unsup`` parts), also when it holds no sample of a term (its
    normaliser is then 0): the call makes one ``all_reduce`` (sum) of the stacked normalisers. Without a
    process group it makes none.

    Args:
        terms (dict[str, TaskLoss]): term name -> this rank's sums and normaliser.

    Returns:
        dict[str, dict]: term name -> its losses, ``world_size * sum / max(global normaliser, 1)``; with DDP's
        gradient average this is the gradient of one process on the global batch.
    """
    if not terms:
        return {}
    names = list(terms)
    counts = torch.stack([terms[n].normaliser.detach().float().reshape(()) for n in names])
    world_size = get_world_size()
    if world_size > 1:
        all_reduce(counts, op='sum')
    denoms = counts.clamp(min=1.0) / world_size
    return {name: _divide(terms[name].sums, denoms[i]) for i, name in enumerate(names)}
