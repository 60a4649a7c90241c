"""Every explicit-sampling config draws from the paper's pools, on data with the paper's label counts.

Section 3: "labeled" = labeled for at least one task, unless otherwise specified; section 4.1 specifies the
seg-labeled images for scenario (a) (every image is labeled for detection) and section 4.3 the 2,972
fully-labeled images for BDD100K. The annotation files below have the paper's counts (Cityscapes: 2,975 train,
19,998 train_extra, 86,275 sequence frames; BDD100K: 69,853 det, 6,546 seg, 2,972 of them both, 143 none), in
the format the converters write; the low-data splits come from ``tools/make_partial_split.py``. Each explicit
config's train dataset and sampler are built from the config itself, and both pool sizes are checked.
"""
import glob
import json
import os
import os.path as osp

import pytest
from mmdet.registry import DATA_SAMPLERS, DATASETS
from mmengine.config import Config

import mtssl_mm  # noqa: F401
from fixtures import REPO
from official_fixtures import load_tool

CITYSCAPES_TRAIN, TRAIN_EXTRA, SEQUENCE = 2975, 19998, 86275
BDD_BOTH, BDD_DET_ONLY, BDD_SEG_ONLY, BDD_NONE = 2972, 69853 - 2972, 6546 - 2972, 143
N_DET, N_SEG = 372, 93  # section 4.1's smallest sizes (Tables 1-3)

# split name -> (make_partial_split arguments, pools of labeled='any'); scenario (a) is checked on ['seg']
SPLITS = {
    'a': (dict(scenario='a', n_seg=N_SEG), None),
    'b': (dict(scenario='b', n_det=N_SEG), (N_SEG, CITYSCAPES_TRAIN - N_SEG)),
    'd': (dict(scenario='d', n_det=N_DET, n_seg=N_SEG), (N_DET, CITYSCAPES_TRAIN - N_DET)),
}
# config -> [(split file or None, expected (labeled, other) pool sizes)]; every explicit config must be here
LOWDATA_MULTITASK = [('b', (N_SEG, CITYSCAPES_TRAIN - N_SEG)), ('d', (N_DET, CITYSCAPES_TRAIN - N_DET))]
LOWDATA_A = [('a', (N_SEG, CITYSCAPES_TRAIN - N_SEG))]  # the seg-labeled images against the rest
LOWDATA_SINGLE = [('b', (N_SEG, CITYSCAPES_TRAIN - N_SEG))]  # labeled for the experiment's one task
EXTRA = [(None, (CITYSCAPES_TRAIN, TRAIN_EXTRA))]
WITH_SEQUENCE = [(None, (CITYSCAPES_TRAIN, TRAIN_EXTRA + SEQUENCE))]
BDD = [(None, (BDD_BOTH, BDD_DET_ONLY + BDD_SEG_ONLY + BDD_NONE))]  # 2,972 against 70,598
EXPECTED = {}
for method in ('fixmatch', 'densefixmatch'):
    for suffix in ('', '_all'):
        EXPECTED[f'cityscapes_lowdata/{method}_explicit{suffix}.py'] = LOWDATA_MULTITASK
        EXPECTED[f'cityscapes_lowdata/{method}_explicit{suffix}_a.py'] = LOWDATA_A
        EXPECTED[f'cityscapes_extra/{method}_explicit{suffix}.py'] = EXTRA
        EXPECTED[f'cityscapes_sequence/{method}_explicit{suffix}.py'] = WITH_SEQUENCE
        EXPECTED[f'bdd100k/{method}_explicit{suffix}.py'] = BDD
    for task in ('det', 'seg'):
        EXPECTED[f'cityscapes_lowdata/{method}_explicit_{task}.py'] = LOWDATA_SINGLE
    EXPECTED[f'demo/{method}_explicit.py'] = LOWDATA_MULTITASK
# + image attributes for every det-labeled image: labeled='all' still pools the det+seg images
EXPECTED['bdd100k/densefixmatch_explicit_3tasks.py'] = BDD


def explicit_configs():
    found = []
    for path in sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py'))):
        rel = osp.relpath(path, osp.join(REPO, 'configs'))
        if rel.startswith('_base_'):
            continue
        sampler = Config.fromfile(path).train_dataloader.get('sampler') or {}
        if sampler.get('type') == 'ExplicitSampler':
            found.append(rel)
    return found


def test_every_explicit_config_has_an_expectation():
    assert sorted(explicit_configs()) == sorted(EXPECTED)


def _entry(img_path, tasks, seg_map_path=None):
    entry = dict(img_path=img_path, height=720, width=1280, labeled_tasks=list(tasks), instances=[])
    if seg_map_path:
        entry['seg_map_path'] = seg_map_path
    return entry


def _dump(path, entries, metainfo):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(dict(metainfo=metainfo, data_list=entries), f)


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    """Annotation files (converter format) with the paper's counts, and the low-data split files."""
    cs_root = str(tmp_path_factory.mktemp('cityscapes'))
    cs_meta = dict(classes=['person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'])
    cities = ['aachen', 'bochum', 'bremen', 'cologne', 'darmstadt']

    def cs_name(split, i, suffix='leftImg8bit.png'):
        city = cities[i % len(cities)]
        return f'leftImg8bit/{split}/{city}/{city}_{i:06d}_000019_{suffix}'

    train = [
        _entry(
            cs_name('train', i), ('det', 'seg'),
            f'gtFine/train/{cities[i % 5]}/{cities[i % 5]}_{i:06d}_000019_gtFine_labelTrainIds.png')
        for i in range(CITYSCAPES_TRAIN)
    ]
    _dump(osp.join(cs_root, 'annotations', 'train.json'), train, cs_meta)
    _dump(
        osp.join(cs_root, 'annotations', 'train_extra.json'),
        [_entry(cs_name('train_extra', i), ()) for i in range(TRAIN_EXTRA)], cs_meta)
    _dump(
        osp.join(cs_root, 'annotations', 'sequence.json'), [
            _entry(f'leftImg8bit_sequence/train/aachen/aachen_{i // 30:06d}_{i % 30:06d}_leftImg8bit.png', ())
            for i in range(SEQUENCE)
        ], cs_meta)
    split_tool = load_tool('make_partial_split.py')
    for name, (kwargs, _) in SPLITS.items():
        kwargs = dict(kwargs)
        split = split_tool.make_split(train, kwargs.pop('scenario'), seed=0, **{k: str(v) for k, v in kwargs.items()})
        os.makedirs(osp.join(cs_root, 'splits'), exist_ok=True)
        with open(osp.join(cs_root, 'splits', f'{name}.json'), 'w') as f:
            json.dump(dict(labeled=split), f)

    bdd_root = str(tmp_path_factory.mktemp('bdd100k'))
    entries = []
    counts = [(('det', 'seg'), BDD_BOTH), (('det', ), BDD_DET_ONLY), (('seg', ), BDD_SEG_ONLY), ((), BDD_NONE)]
    for tasks, n in counts:
        for _ in range(n):
            name = f'{len(entries):08x}-{len(entries) * 7 % 65536:04x}'
            folder = '10k' if 'seg' in tasks else '100k'
            seg = f'labels/sem_seg/masks/train/{name}.png' if 'seg' in tasks else None
            entries.append(_entry(f'images/{folder}/train/{name}.jpg', tasks, seg))
    bdd_meta = dict(classes=[
        'pedestrian', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle', 'traffic light', 'traffic sign'
    ])
    _dump(osp.join(bdd_root, 'annotations', 'train.json'), entries, bdd_meta)
    _dump(
        osp.join(bdd_root, 'annotations', 'attributes_train.json'),  # as the converter writes it
        [
            dict(img_path=e['img_path'], attributes=dict(weather='clear', scene='highway', timeofday='night'))
            for e in entries if 'det' in e['labeled_tasks']
        ],
        dict(attr_classes=dict(weather=['clear'], scene=['highway'], timeofday=['night'])))
    return dict(cityscapes=cs_root, bdd100k=bdd_root)


def build_pools(config, root, split):
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    dataset_cfg = cfg.train_dataloader.dataset
    for part in dataset_cfg.get('datasets', [dataset_cfg]):
        part.data_root = root
        part.pipeline = []
        part.serialize_data = False
        if split is not None:
            part.split_file = f'splits/{split}.json'
    dataset = DATASETS.build(dataset_cfg)
    sampler = DATA_SAMPLERS.build(dict(cfg.train_dataloader.sampler, dataset=dataset, seed=0))
    return len(sampler.labeled_indices), len(sampler.other_indices)


@pytest.mark.parametrize('config', sorted(EXPECTED))
def test_explicit_config_pools_match_the_paper(roots, config):
    root = roots['bdd100k'] if config.startswith('bdd100k') else roots['cityscapes']
    for split, expected in EXPECTED[config]:
        assert build_pools(config, root, split) == expected, (config, split)


def test_scenario_a_with_the_default_pools_names_the_option(roots):
    """Every image is det-labeled in (a): 'labeled for any task' leaves no other pool, and the error says so."""
    cfg = 'cityscapes_lowdata/fixmatch_explicit.py'
    with pytest.raises(
            ValueError,
            match=r"other pool is empty with labeled='any' on MultiTaskDataset\(.*"
            r"train.json; tasks \['det', 'seg'\]\): 2975 labeled and 0 other"):
        build_pools(cfg, roots['cityscapes'], 'a')
