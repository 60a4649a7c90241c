"""Explicit mini-batch sampling: every batch half labeled, half the rest (section 3, "Mini-batch sampling")."""
import itertools
from typing import Iterator, List, Optional, Sequence, Sized, Tuple, Union

import torch
from mmdet.registry import DATA_SAMPLERS
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

LabeledSpec = Union[str, Sequence[str]]


def dataset_tasks(dataset: Sized) -> Tuple[str, ...]:
    """The tasks of the experiment a dataset serves: its ``tasks``, or those of the datasets it concatenates."""
    if hasattr(dataset, 'tasks'):
        return tuple(dataset.tasks)
    if hasattr(dataset, 'datasets'):
        return tuple(dict.fromkeys(t for d in dataset.datasets for t in dataset_tasks(d)))
    raise TypeError(f'{type(dataset).__name__} has no `tasks` (nor `datasets` that have them): ExplicitSampler '
                    f'needs a MultiTaskDataset or a ConcatDataset of them')


def labeled_pools(dataset: Sized, labeled: LabeledSpec = 'any') -> Tuple[List[int], List[int]]:
    """Split the indices of ``dataset`` into the labeled and the other samples.

    Args:
        dataset (Sized): Anything with ``get_data_info(i)['labeled_tasks']`` and ``tasks`` (a
            :class:`MultiTaskDataset`, an mmengine ``ConcatDataset`` of them).
        labeled (str | Sequence[str]): What makes a sample "labeled": ``'any'`` -- labeled for at least one of
            the dataset's tasks (the paper's default, section 3); ``'all'`` -- labeled for every one of them
            (BDD100K, section 4.3: the fully-labeled samples); a sequence of task names -- labeled for every
            one of those (scenario (a) of section 4.1: ``('seg', )``).

    Returns:
        tuple[list[int], list[int]]: Indices of the labeled samples and of the others, ascending.
    """
    tasks = dataset_tasks(dataset)
    if labeled == 'any':
        required, need_all = tasks, False
    elif labeled == 'all':
        required, need_all = tasks, True
    elif isinstance(labeled, (list, tuple)) and labeled and all(isinstance(t, str) for t in labeled):
        unknown = [t for t in labeled if t not in tasks]
        if unknown:
            raise ValueError(f'ExplicitSampler: labeled={list(labeled)} names task(s) {unknown} that the dataset '
                             f'does not train (its tasks: {list(tasks)})')
        required, need_all = tuple(labeled), True
    else:
        raise ValueError(f"ExplicitSampler: labeled must be 'any', 'all' or a non-empty list of task names, "
                         f'got {labeled!r}')
    match = all if need_all else any
    pools = ([], [])
    for i in range(len(dataset)):
        have = dataset.get_data_info(i)['labeled_tasks']
        pools[0 if match(t in have for t in required) else 1].append(i)
    return pools


@DATA_SAMPLERS.register_module()
class ExplicitSampler(Sampler):
    """Infinite sampler whose every batch holds a fixed share of labeled samples (explicit sampling).

    The paper's explicit setting over-samples labeled data: each batch is 8 labeled + 8 other samples.
    "Labeled" is ``labeled`` (see :func:`labeled_pools`): for at least one task unless the paper specifies
    otherwise -- scenario (a) of section 4.1, where every sample is labeled for detection, pools the
    seg-labeled samples (``labeled=['seg']``), and BDD100K (4.3) oversamples the fully-labeled ones
    (``labeled='all'``). The stream of each rank is a sequence of
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
        labeled (str | Sequence[str]): ``'any'`` (default), ``'all'`` or task names; see :func:`labeled_pools`.
        labeled_ratio (float): Share of labeled samples per batch; ``round_half_up(batch_size * ratio)``
            must leave at least one sample of each pool.
        shuffle (bool): Shuffle each pass of each pool; False walks the pools in index order.
        seed (int, optional): Seed of the permutations; None draws one and syncs it across ranks.

    Raises:
        ValueError: A bad ``batch_size`` / ``labeled_ratio`` / ``labeled``, or an empty pool (naming the option,
            the dataset and both pool sizes).
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 labeled: LabeledSpec = 'any',
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
        self.labeled = labeled if isinstance(labeled, str) else list(labeled)
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.batch_size = batch_size
        self.labeled_ratio = labeled_ratio
        self.num_labeled = num_labeled
        self.num_other = batch_size - num_labeled
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.labeled_indices, self.other_indices = labeled_pools(dataset, self.labeled)
        if not self.labeled_indices or not self.other_indices:
            empty = 'labeled' if not self.labeled_indices else 'other'
            raise ValueError(
                f'ExplicitSampler: the {empty} pool is empty with labeled={self.labeled!r} on {describe(dataset)}: '
                f'{len(self.labeled_indices)} labeled and {len(self.other_indices)} other samples. Explicit '
                f'sampling needs both pools: set train_dataloader.sampler.labeled to what "labeled" means for '
                f"this data ('any', 'all' or task names), check the split file / dataset `tasks`, or use "
                f'implicit sampling (InfiniteSampler)')

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


def describe(dataset: Sized) -> str:
    """The dataset, for an error message: its class, annotation file(s) and tasks."""
    parts = getattr(dataset, 'datasets', [dataset])
    files = [getattr(d, 'ann_file', None) or type(d).__name__ for d in parts]
    return f'{type(dataset).__name__}({", ".join(files)}; tasks {list(dataset_tasks(dataset))})'


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
