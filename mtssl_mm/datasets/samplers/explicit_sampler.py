"""Explicit mini-batch sampling: every batch half labeled, half the rest (section 3, "Mini-batch sampling")."""
import itertools
from typing import Iterator, List, Optional, Sequence, Sized

import torch
from mmdet.registry import DATA_SAMPLERS
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler


def labeled_pools(dataset: Sized, labeled_tasks: Optional[Sequence[str]] = None):
    """Split the indices of ``dataset`` into the labeled and the other samples.

    Args:
        dataset (Sized): Anything with ``get_data_info(i)['labeled_tasks']`` (a :class:`MultiTaskDataset`, an
            mmengine ``ConcatDataset`` of them).
        labeled_tasks (str | Sequence[str], optional): A sample is "labeled" when it is labeled for one of
            these tasks; None: for at least one task.

    Returns:
        tuple[list[int], list[int]]: Indices of the labeled samples and of the others, ascending.
    """
    if isinstance(labeled_tasks, str):
        labeled_tasks = (labeled_tasks, )
    labeled, rest = [], []
    for i in range(len(dataset)):
        tasks = dataset.get_data_info(i)['labeled_tasks']
        hit = bool(tasks) if labeled_tasks is None else any(t in tasks for t in labeled_tasks)
        (labeled if hit else rest).append(i)
    return labeled, rest


@DATA_SAMPLERS.register_module()
class ExplicitSampler(Sampler):
    """Infinite sampler whose every batch holds a fixed share of labeled samples (explicit sampling).

    The paper's explicit setting over-samples labeled data: each batch is 8 labeled + 8 other samples.
    "Labeled" means labeled for at least one task, or for one of ``labeled_tasks`` (e.g. ``('seg', )`` in
    scenario (a), where every sample is labeled for detection). The stream of each rank is a sequence of
    chunks of ``batch_size`` indices: first ``round(batch_size * labeled_ratio)`` labeled ones, then the rest
    from the other pool. Each pool is an endless, seeded, reshuffled stream (a new permutation every pass,
    as mmengine's ``InfiniteSampler``); rank ``r`` of ``W`` takes elements ``r, r + W, ...`` of each pool's
    stream, so the ranks draw disjoint shares of each pass, the ratio holds on every rank, and a seed
    reproduces every rank's order. Each call of ``__iter__`` starts the streams anew.

    ``batch_size`` is the *per-rank* batch size and must equal the dataloader's ``batch_size``, which must
    not use a ``batch_sampler`` that regroups indices (mmdet's ``AspectRatioBatchSampler``); use
    :func:`check_dataloader_cfg` to check a config. The paper's 8 + 8 on 8 GPUs is ``batch_size=2`` per GPU
    (1 + 1); with 1 image per GPU the ratio cannot hold per rank, which is an error.

    Args:
        dataset (Sized): See :func:`labeled_pools`.
        batch_size (int): Samples per batch on each rank (>= 2).
        labeled_tasks (Sequence[str], optional): Tasks that make a sample "labeled"; None: any task.
        labeled_ratio (float): Share of labeled samples per batch; ``round_half_up(batch_size * ratio)``
            must leave at least one sample of each pool.
        shuffle (bool): Shuffle each pass of each pool; False walks the pools in index order.
        seed (int, optional): Seed of the permutations; None draws one and syncs it across ranks.

    Raises:
        ValueError: A bad ``batch_size`` / ``labeled_ratio``, or an empty pool (which one and why).
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 labeled_tasks: Optional[Sequence[str]] = None,
                 labeled_ratio: float = 0.5,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        if not isinstance(batch_size, int) or batch_size < 2:
            raise ValueError(f'ExplicitSampler: batch_size must be an int >= 2 (one labeled and one other sample '
                             f'per batch and rank), got {batch_size!r}')
        if not 0.0 < labeled_ratio < 1.0:
            raise ValueError(f'ExplicitSampler: labeled_ratio must be in (0, 1), got {labeled_ratio}')
        num_labeled = int(batch_size * labeled_ratio + 0.5)
        if not 0 < num_labeled < batch_size:
            raise ValueError(f'ExplicitSampler: batch_size {batch_size} x labeled_ratio {labeled_ratio} gives '
                             f'{num_labeled} labeled samples per batch; each pool needs at least one')
        if isinstance(labeled_tasks, str):
            labeled_tasks = (labeled_tasks, )
        self.labeled_tasks = None if labeled_tasks is None else tuple(labeled_tasks)
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.batch_size = batch_size
        self.labeled_ratio = labeled_ratio
        self.num_labeled = num_labeled
        self.num_other = batch_size - num_labeled
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.labeled_indices, self.other_indices = labeled_pools(dataset, self.labeled_tasks)
        what = 'for at least one task' if self.labeled_tasks is None else f'for one of {list(self.labeled_tasks)}'
        if not self.labeled_indices:
            raise ValueError(f'ExplicitSampler: the labeled pool is empty: none of the {len(dataset)} samples is '
                             f'labeled {what} (check the split file, `tasks`, or `labeled_tasks`)')
        if not self.other_indices:
            raise ValueError(f'ExplicitSampler: the other (unlabeled) pool is empty: all {len(dataset)} samples '
                             f'are labeled {what}; explicit sampling needs samples outside the labeled pool '
                             f'(add unlabeled data, name a task in `labeled_tasks`, or use InfiniteSampler)')

    def _pool_stream(self, pool: List[int], offset: int) -> Iterator[int]:
        """This rank's share of an endless stream of passes over ``pool``."""

        def passes():
            g = torch.Generator()
            g.manual_seed(self.seed + offset)
            while True:
                order = torch.randperm(len(pool), generator=g).tolist() if self.shuffle else range(len(pool))
                for i in order:
                    yield pool[i]

        return itertools.islice(passes(), self.rank, None, self.world_size)

    def __iter__(self) -> Iterator[int]:
        labeled = self._pool_stream(self.labeled_indices, 0)
        other = self._pool_stream(self.other_indices, 1)
        while True:
            yield from itertools.islice(labeled, self.num_labeled)
            yield from itertools.islice(other, self.num_other)

    def __len__(self) -> int:
        """The size of the dataset (as mmengine's ``InfiniteSampler``; the stream itself is endless)."""
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        """Not used by an infinite sampler (as mmengine's ``InfiniteSampler``)."""


def check_dataloader_cfg(dataloader_cfg: dict) -> None:
    """Check that a dataloader config with an ``ExplicitSampler`` batches its chunks as they are drawn.

    Args:
        dataloader_cfg (dict): E.g. ``cfg.train_dataloader``.

    Raises:
        ValueError: The sampler's ``batch_size`` differs from the dataloader's, or a ``batch_sampler`` is set.
    """
    sampler = dataloader_cfg.get('sampler') or {}
    if sampler.get('type') not in ('ExplicitSampler', ExplicitSampler):
        return
    if sampler.get('batch_size') != dataloader_cfg.get('batch_size'):
        raise ValueError(f'ExplicitSampler batch_size {sampler.get("batch_size")} != dataloader batch_size '
                         f'{dataloader_cfg.get("batch_size")}: batches would mix the labeled/other chunks')
    if dataloader_cfg.get('batch_sampler') is not None:
        raise ValueError(f'ExplicitSampler needs batch_sampler=None (got {dataloader_cfg["batch_sampler"]}): '
                         f'a batch sampler would regroup the labeled/other chunks')
