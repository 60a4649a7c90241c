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

The values are those of the global batch too. The same ``all_reduce`` carries the detached loss sums and the
statistics (counts, and the numerators and denominators of ratios such as pseudo boxes per image), so every
returned loss has the *value* of the global batch's loss, ``sum_r S_r / max(sum_r N_r, 1)``, while its gradient
stays this rank's share (``local + (global - local).detach()``): mmengine's ``parse_losses`` then logs, on every
rank, what one process on the whole global batch would log, and the gradients are unchanged.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Tuple, Union

import torch
from mmengine.dist import all_reduce, get_world_size

LossValue = Union[torch.Tensor, List[torch.Tensor]]
Ratio = Tuple[Union[torch.Tensor, float], Union[torch.Tensor, float]]


@dataclass
class TaskLoss:
    """Unnormalised losses of one task on one rank.

    Attributes:
        sums (dict): loss name -> sum over the valid elements of this rank's samples (a scalar tensor, or a list
            of them, one per feature level, as mmdet's dense heads return). Entries whose name does not contain
            ``'loss'`` are counts (``num_labeled``): summed over the ranks for the log.
        normaliser (torch.Tensor): scalar, the number of valid elements behind ``sums`` on this rank (labeled
            pixels, positive anchors, images, ...); 0 when the rank has none.
        ratios (dict): statistic name -> ``(numerator, denominator)`` on this rank (e.g. pseudo boxes and images
            of B^u); logged as ``sum numerators / max(sum denominators, 1)`` over the global batch.
    """

    sums: Dict[str, LossValue]
    normaliser: torch.Tensor
    ratios: Dict[str, Ratio] = field(default_factory=dict)

    def mean(self) -> Dict[str, LossValue]:
        """The losses of this rank alone, each sum divided by ``max(normaliser, 1)`` (no communication)."""
        denom = self.normaliser.float().clamp(min=1.0)
        return {
            k: ([x / denom for x in v] if isinstance(v, (list, tuple)) else v / denom) if 'loss' in k else v
            for k, v in self.sums.items()
        }


def _total(value: LossValue) -> torch.Tensor:
    """A loss entry as one detached float scalar (the sum of its levels)."""
    parts = value if isinstance(value, (list, tuple)) else [value]
    return sum(p.detach().float().sum() for p in parts)


def _with_value(local: LossValue, value: torch.Tensor) -> LossValue:
    """``local`` (a tensor or per-level list) with its total replaced by ``value`` and its gradient kept."""
    if isinstance(local, (list, tuple)):
        shift = (value - _total(local)).to(local[0].dtype)
        return [local[0] + shift] + list(local[1:])
    return local + (value - _total(local)).to(local.dtype)


def normalise_globally(terms: Dict[str, TaskLoss]) -> Dict[str, Dict[str, LossValue]]:
    """Divide every term's sums by its normaliser summed over all ranks, scaled for DDP's gradient average, and
    give every returned value the value of the global batch.

    Every rank must call this once per step with the same terms, and in each term the same loss, count and ratio
    names, also when it holds no sample of a term (its normaliser is then 0): the call makes one ``all_reduce``
    (sum) of a vector laid out by those names (loss entries by their total over levels, so a rank's zero
    placeholder and another rank's per-level list agree). Without a process group it makes none.

    Args:
        terms (dict[str, TaskLoss]): term name -> this rank's sums, normaliser and ratios.

    Returns:
        dict[str, dict]: term name -> its losses (gradient: ``world_size * sum / max(global normaliser, 1)``,
        which DDP's average turns into the gradient of one process on the global batch; value: the global
        batch's loss), its counts summed over the ranks and its ratios over the global batch.
    """
    if not terms:
        return {}
    names = list(terms)
    layout, values = [], []  # (term, key, kind); the values in the same order
    for name in names:
        term = terms[name]
        values.append(term.normaliser.detach().float().reshape(()))
        for key in sorted(term.sums):
            layout.append((name, key, 'loss' if 'loss' in key else 'count'))
            values.append(_total(term.sums[key]))
        for key in sorted(term.ratios):
            layout.append((name, key, 'ratio'))
            values += [
                torch.as_tensor(v, dtype=torch.float32, device=values[0].device).reshape(()) for v in term.ratios[key]
            ]
    vec = torch.stack([v.to(values[0].device) for v in values])
    world_size = get_world_size()
    if world_size > 1:
        all_reduce(vec, op='sum')
    out, pos = {}, 0
    for name in names:
        term = terms[name]
        count = vec[pos].clamp(min=1.0)
        pos += 1
        share = count / world_size  # DDP averages the gradients of the world_size ranks
        result = {}
        for key in sorted(term.sums):
            local = term.sums[key]
            if 'loss' in key:
                local = [v / share for v in local] if isinstance(local, (list, tuple)) else local / share
                result[key] = local if world_size == 1 else _with_value(local, vec[pos] / count)
            else:
                result[key] = vec[pos]
            pos += 1
        for key in sorted(term.ratios):
            result[key] = vec[pos] / vec[pos + 1].clamp(min=1.0)
            pos += 2
        out[name] = {key: result[key] for key in list(term.sums) + list(term.ratios)}
    return out
