"""Implicit (mmengine's InfiniteSampler) and explicit (ExplicitSampler) mini-batch sampling, also under DDP."""
import itertools
import json
import os
import os.path as osp

import pytest

import mtssl_mm.datasets.samplers  # noqa: F401  (registers ExplicitSampler)
from mtssl_mm.datasets.samplers import ExplicitSampler, check_dataloader_cfg, labeled_pools
from gloo_group import init_gloo, start_gloo_processes


class FakeDataset:
    """``labeled_tasks`` per index, read through ``get_data_info`` as from a MultiTaskDataset."""

    def __init__(self, labeled_tasks, tasks=('det', 'seg')):
        self.per_sample = [tuple(t) for t in labeled_tasks]
        self.tasks = tasks

    def __len__(self):
        return len(self.per_sample)

    def get_data_info(self, i):
        return dict(labeled_tasks=self.per_sample[i])


def mixed(n_labeled=10, n_other=30):
    """``n_labeled`` samples labeled for det and/or seg (interleaved), then ``n_other`` labeled for nothing."""
    kinds = [('det', 'seg'), ('det', ), ('seg', )]
    return FakeDataset([kinds[i % 3] for i in range(n_labeled)] + [()] * n_other)


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def as_rank(monkeypatch, module, rank, world_size):
    monkeypatch.setattr(module, 'get_dist_info', lambda: (rank, world_size))


# --------------------------------------------------------------------------------------------- implicit
def test_implicit_sampling_is_mmengines_infinite_sampler_disjoint_per_rank(monkeypatch):
    import mmengine.dataset.sampler as mm_sampler
    from mmengine.dataset import InfiniteSampler
    ds = mixed(7, 13)  # 20 samples
    streams = []
    for rank in range(4):
        as_rank(monkeypatch, mm_sampler, rank, 4)
        streams.append(take(InfiniteSampler(ds, shuffle=True, seed=5), 10))
    first_pass = [s[:5] for s in streams]  # 4 ranks x 5 = one pass over the 20 samples
    assert sorted(itertools.chain(*first_pass)) == list(range(20))  # disjoint shares, uniform over all
    second_pass = [s[5:10] for s in streams]
    assert sorted(itertools.chain(*second_pass)) == list(range(20))
    assert first_pass != second_pass  # a new permutation each pass
    as_rank(monkeypatch, mm_sampler, 1, 4)
    assert take(InfiniteSampler(ds, shuffle=True, seed=5), 10) == streams[1]  # the seed reproduces the order
    assert take(InfiniteSampler(ds, shuffle=True, seed=6), 10) != streams[1]


# --------------------------------------------------------------------------------------------- explicit
def test_every_batch_holds_the_ratio_and_each_pool_is_covered_per_pass():
    ds = mixed(10, 30)
    sampler = ExplicitSampler(ds, batch_size=4, seed=0)
    assert (sampler.num_labeled, sampler.num_other) == (2, 2)
    stream = take(sampler, 4 * 30)
    batches = [stream[i:i + 4] for i in range(0, len(stream), 4)]
    for b in batches:
        assert all(i < 10 for i in b[:2]) and all(i >= 10 for i in b[2:])
    labeled = [i for b in batches for i in b[:2]]
    other = [i for b in batches for i in b[2:]]
    for k in range(0, 60, 10):  # every 10 labeled draws are one pass: each labeled sample once
        assert sorted(labeled[k:k + 10]) == list(range(10))
    assert sorted(other[:30]) == list(range(10, 40)) and sorted(other[30:60]) == list(range(10, 40))
    assert labeled[:10] != labeled[10:20]  # reshuffled every pass
    assert len(sampler) == 40
    sampler.set_epoch(3)  # a no-op, as InfiniteSampler's


def test_ratio_rounding_and_bad_arguments():
    ds = mixed(10, 30)
    s = ExplicitSampler(ds, batch_size=3, labeled_ratio=0.5, seed=0)  # round half up: 2 + 1
    assert (s.num_labeled, s.num_other) == (2, 1)
    s = ExplicitSampler(ds, batch_size=16, labeled_ratio=0.25, seed=0)
    assert (s.num_labeled, s.num_other) == (4, 12)
    with pytest.raises(ValueError, match='batch_size must be an int >= 2'):
        ExplicitSampler(ds, batch_size=1, seed=0)
    with pytest.raises(ValueError, match=r'labeled_ratio must be in \(0, 1\)'):
        ExplicitSampler(ds, batch_size=4, labeled_ratio=1.0, seed=0)
    with pytest.raises(ValueError, match='each pool needs at least one'):
        ExplicitSampler(ds, batch_size=4, labeled_ratio=0.9, seed=0)


def test_labeled_option_any_all_named_and_empty_pools():
    ds = FakeDataset([('det', ), ('det', 'seg'), ('det', ), ('det', 'seg'), ('det', )])  # scenario (a)-like
    with pytest.raises(
            ValueError,
            match=r"other pool is empty with labeled='any' on FakeDataset\(FakeDataset; "
            r"tasks \['det', 'seg'\]\): 5 labeled and 0 other samples.*sampler.labeled"):
        ExplicitSampler(ds, batch_size=2, seed=0)
    s = ExplicitSampler(ds, batch_size=2, labeled=['seg'], seed=0)
    assert (s.labeled_indices, s.other_indices) == ([1, 3], [0, 2, 4])
    stream = take(s, 20)
    assert set(stream[0::2]) == {1, 3} and set(stream[1::2]) == {0, 2, 4}
    assert labeled_pools(ds, 'all') == ([1, 3], [0, 2, 4])  # every task: the fully-labeled samples
    assert labeled_pools(ds, ['det']) == ([0, 1, 2, 3, 4], [])
    assert labeled_pools(ds, ['det', 'seg']) == labeled_pools(ds, 'all')
    bdd_like = FakeDataset([('det', 'seg'), ('det', ), ('seg', ), (), ('det', 'seg')])
    assert labeled_pools(bdd_like, 'any') == ([0, 1, 2, 4], [3])
    assert labeled_pools(bdd_like, 'all') == ([0, 4], [1, 2, 3])
    single = FakeDataset([('det', ), (), ('det', )], tasks=('det', ))  # a detection-only experiment
    assert labeled_pools(single, 'all') == labeled_pools(single, 'any') == ([0, 2], [1])
    with pytest.raises(ValueError, match=r"labeled pool is empty with labeled=\['seg'\].*0 labeled and 2 other"):
        ExplicitSampler(FakeDataset([('det', ), ()]), batch_size=2, labeled=['seg'], seed=0)
    with pytest.raises(ValueError, match='labeled pool is empty'):
        ExplicitSampler(FakeDataset([(), ()]), batch_size=2, seed=0)
    with pytest.raises(ValueError, match=r"labeled=\['depth'\] names task\(s\) \['depth'\] that the dataset"):
        ExplicitSampler(ds, batch_size=2, labeled=['depth'], seed=0)
    with pytest.raises(ValueError, match="labeled must be 'any', 'all' or a non-empty list of task names, got 'seg'"):
        ExplicitSampler(ds, batch_size=2, labeled='seg', seed=0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'labeled_tasks'"):  # the old name is gone
        ExplicitSampler(ds, batch_size=2, labeled_tasks=['seg'], seed=0)


def test_ranks_draw_disjoint_shares_with_the_ratio_on_every_rank(monkeypatch):
    import mtssl_mm.datasets.samplers.explicit_sampler as module
    ds = mixed(12, 24)
    world = 3
    streams = []
    for rank in range(world):
        as_rank(monkeypatch, module, rank, world)
        streams.append(take(ExplicitSampler(ds, batch_size=4, seed=7), 4 * 8))
    labeled = [[i for k in range(0, 32, 4) for i in s[k:k + 2]] for s in streams]
    other = [[i for k in range(0, 32, 4) for i in s[k + 2:k + 4]] for s in streams]
    for r in range(world):
        assert all(i < 12 for i in labeled[r]) and all(i >= 12 for i in other[r])  # the ratio holds per rank
    # one pass of each pool is split over the ranks: 12 labeled = 3 ranks x 4, 24 others = 3 ranks x 8
    assert sorted(itertools.chain(*(lab[:4] for lab in labeled))) == list(range(12))
    assert sorted(itertools.chain(*(o[:8] for o in other))) == list(range(12, 36))
    as_rank(monkeypatch, module, 2, world)
    again = ExplicitSampler(ds, batch_size=4, seed=7)
    assert take(again, 32) == streams[2] and take(again, 32) == streams[2]  # seeded; each __iter__ restarts
    assert take(ExplicitSampler(ds, batch_size=4, seed=8), 32) != streams[2]


def test_unseeded_sampler_draws_a_seed():
    s = ExplicitSampler(mixed(), batch_size=2)
    assert isinstance(s.seed, int)


def test_check_dataloader_cfg():
    check_dataloader_cfg(dict(batch_size=4, sampler=dict(type='ExplicitSampler', batch_size=4)))
    check_dataloader_cfg(dict(batch_size=1, sampler=dict(type='InfiniteSampler')))
    with pytest.raises(ValueError, match='batch_size 8 != dataloader batch_size 4'):
        check_dataloader_cfg(dict(batch_size=4, sampler=dict(type='ExplicitSampler', batch_size=8)))
    with pytest.raises(ValueError, match='batch_sampler=None'):
        check_dataloader_cfg(
            dict(
                batch_size=4,
                batch_sampler=dict(type='AspectRatioBatchSampler'),
                sampler=dict(type='ExplicitSampler', batch_size=4)))


def test_runner_dataloader_over_a_concat_of_multitask_datasets(tmp_path):
    """Built as a config builds it: ConcatDataset of MultiTaskDatasets, sampler from the registry."""
    from mmengine.runner import Runner

    import mtssl_mm  # noqa: F401
    from toy_data import write_dataset
    root = str(tmp_path)
    write_dataset(root, [('det', 'seg'), ('det', ), ('seg', )], split='train', h=32, w=64)
    write_dataset(root, [()] * 5, split='extra', h=32, w=64, seed=1)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadMultiTaskAnnotations'), dict(type='PackMultiTaskInputs')]
    # the unlabeled part labels no image, so its tasks cannot come from its file: every part names them
    part = dict(
        type='MultiTaskDataset',
        data_root=root,
        data_prefix=dict(img='', seg=''),
        filter_cfg=None,
        tasks=('det', 'seg'),
        pipeline=pipeline)
    cfg = dict(
        batch_size=4,
        num_workers=0,
        sampler=dict(type='ExplicitSampler', batch_size=4, seed=0),
        dataset=dict(
            type='ConcatDataset',
            datasets=[dict(part, ann_file='annotations/train.json'),
                      dict(part, ann_file='annotations/extra.json')]),
        collate_fn=dict(type='pseudo_collate'))
    check_dataloader_cfg(cfg)
    loader = Runner.build_dataloader(cfg, seed=0)
    assert isinstance(loader.sampler, ExplicitSampler)
    for batch in itertools.islice(iter(loader), 3):
        tasks = [s.labeled_tasks for s in batch['data_samples']]
        assert all(t for t in tasks[:2]) and not any(t for t in tasks[2:]), tasks


# ------------------------------------------------------------------------------------ real DDP (gloo, CPU)
def _ddp_worker(rank, ports, world_size, out_dir):
    import torch.distributed as dist
    init_gloo(rank, world_size, ports)
    try:
        import numpy as np

        from mtssl_mm.datasets.samplers import ExplicitSampler
        np.random.seed(rank)  # forked workers share the parent's RNG state: make an unsynced seed differ
        s = ExplicitSampler(mixed(8, 16), batch_size=4)  # seed=None: drawn on rank 0, broadcast
        with open(osp.join(out_dir, f'{rank}.json'), 'w') as f:
            json.dump(dict(seed=s.seed, stream=take(s, 16)), f)
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_share_the_seed_and_draw_disjoint_shares(tmp_path):
    # fork: the workers inherit the imported modules (a spawned process would import mmdet again, ~8 s)
    start_gloo_processes(_ddp_worker, args=(2, str(tmp_path)))
    runs = [json.load(open(tmp_path / f'{r}.json')) for r in range(2)]
    assert runs[0]['seed'] == runs[1]['seed']
    # 4 batches of 2 + 2 per rank; one pass over a pool is split between the 2 ranks
    labeled = [[i for k in range(0, 16, 4) for i in r['stream'][k:k + 2]] for r in runs]
    other = [[i for k in range(0, 16, 4) for i in r['stream'][k + 2:k + 4]] for r in runs]
    assert all(i < 8 for lab in labeled for i in lab) and all(i >= 8 for o in other for i in o)
    assert sorted(labeled[0][:4] + labeled[1][:4]) == list(range(8))  # 8 labeled: 2 ranks x 4
    assert sorted(labeled[0][4:] + labeled[1][4:]) == list(range(8))  # the next pass, reshuffled
    assert sorted(other[0] + other[1]) == list(range(8, 24))  # 16 others: 2 ranks x 8
    assert not os.environ.get('RANK')  # the test process itself stays out of the group


def test_explicit_sampling_on_the_train_extra_config(tmp_path):
    """cityscapes_train_extra.py with the sampler its header documents, on a converted official-format tree."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    import mtssl_mm  # noqa: F401
    from official_fixtures import DATASET_CONFIGS, load_tool, write_cityscapes
    root = str(tmp_path)
    write_cityscapes(root, sequence=False)
    load_tool('dataset_converters/cityscapes.py').convert(root)
    cfg = Config.fromfile(osp.join(DATASET_CONFIGS, 'cityscapes_train_extra.py'))
    cfg.merge_from_dict(
        dict(
            train_dataloader=dict(
                batch_size=2,
                num_workers=0,
                persistent_workers=False,
                sampler=dict(_delete_=True, type='ExplicitSampler', batch_size=2, seed=0))))
    loader_cfg = cfg.train_dataloader.to_dict()
    for part in loader_cfg['dataset']['datasets']:
        part['data_root'] = root
    check_dataloader_cfg(loader_cfg)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    for batch in itertools.islice(iter(loader), 4):  # 3 train images (both tasks) + 2 train_extra (none)
        assert [s.labeled_tasks for s in batch['data_samples']] == [('det', 'seg'), ()]
