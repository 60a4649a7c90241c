"""tools/make_partial_split.py: scenarios a-e of section 4.1, reproducibility, errors, and the dataset reading it."""
import json
import os.path as osp
import random
import re

import pytest

from official_fixtures import build_dataset, load_tool, write_cityscapes

mps = load_tool('make_partial_split.py')
N_IMAGES = 64


def img(i):
    return f'leftImg8bit/train/city/city_{i:06d}_000019_leftImg8bit.png'


@pytest.fixture(scope='module')
def ann_file(tmp_path_factory):
    """A fully labeled annotation file of 64 images (the tool reads only img_path and labeled_tasks)."""
    path = tmp_path_factory.mktemp('split') / 'train.json'
    data_list = [
        dict(img_path=img(i), height=8, width=8, labeled_tasks=['det', 'seg'], seg_map_path='x.png', instances=[])
        for i in range(N_IMAGES)
    ]
    path.write_text(json.dumps(dict(metainfo=dict(classes=['car']), data_list=data_list)))
    return str(path)


def error_line(capsys, argv):
    """``main(argv)`` stops with exit status 2 and one line ``<prog>: error: <message>`` on stderr: the message."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        mps.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.endswith('\n') and err.count('\n') == 1, err
    return err[:-1].split(': error: ', 1)[1]


def run(ann_file, tmp_path, *args, name='split.json'):
    out = str(tmp_path / name)
    result = mps.main([ann_file, *args, '-o', out])
    with open(out) as f:
        assert json.load(f) == result
    return result['labeled'], result['meta']


def test_scenario_a_all_det_n_seg(ann_file, tmp_path, capsys):
    labeled, meta = run(ann_file, tmp_path, '--scenario', 'a', '--n-seg', '8', '--seed', '1')
    assert labeled['det'] == sorted(img(i) for i in range(N_IMAGES))
    assert len(labeled['seg']) == 8 and set(labeled['seg']) <= set(labeled['det'])
    assert meta == dict(
        scenario='a',
        n_det=64,
        n_seg=8,
        overlap=8,
        seed=1,
        ann_file=ann_file,
        num_images=64,
        counts=dict(det=64, seg=8),
        drawn=['det', 'seg'])
    assert 'det 64, seg 8, overlap 8' in capsys.readouterr().out


def test_scenario_b_full_overlap(ann_file, tmp_path):
    labeled, meta = run(ann_file, tmp_path, '--scenario', 'b', '--n-det', '8')
    assert len(labeled['det']) == 8 and labeled['det'] == labeled['seg'] and meta['overlap'] == 8


def test_scenario_c_random_overlap(ann_file, tmp_path, capsys):
    overlaps = set()
    for seed in range(6):
        labeled, meta = run(ann_file, tmp_path, '--scenario', 'c', '--n-det', '16', '--n-seg', '16', '--seed',
                            str(seed))
        assert len(labeled['det']) == len(labeled['seg']) == 16
        overlap = len(set(labeled['det']) & set(labeled['seg']))
        assert meta['overlap'] == overlap
        assert f'overlap {overlap} ' in capsys.readouterr().out
        overlaps.add(overlap)
    assert max(overlaps) < 16 and len(overlaps) > 1  # independent draws: neither full nor fixed overlap


def test_scenario_d_seg_within_det(ann_file, tmp_path):
    for seed in range(4):
        labeled, meta = run(ann_file, tmp_path, '--scenario', 'd', '--n-det', '16', '--n-seg', '4', '--seed', str(seed))
        assert len(labeled['det']) == 16 and len(labeled['seg']) == 4
        assert set(labeled['seg']) <= set(labeled['det']) and meta['overlap'] == 4


def test_scenario_e_independent_sizes(ann_file, tmp_path):
    outside = 0
    for seed in range(4):
        labeled, meta = run(ann_file, tmp_path, '--scenario', 'e', '--n-det', '32', '--n-seg', '8', '--seed', str(seed))
        assert len(labeled['det']) == 32 and len(labeled['seg']) == 8
        assert meta['overlap'] == len(set(labeled['det']) & set(labeled['seg']))
        outside += len(set(labeled['seg']) - set(labeled['det']))
    assert outside > 0  # unlike d, seg images may lie outside the det images


def test_same_seed_same_split_whatever_the_file_order(ann_file, tmp_path):
    a, _ = run(ann_file, tmp_path, '--scenario', 'e', '--n-det', '20', '--n-seg', '5', '--seed', '3', name='a.json')
    b, _ = run(ann_file, tmp_path, '--scenario', 'e', '--n-det', '20', '--n-seg', '5', '--seed', '3', name='b.json')
    assert a == b
    c, _ = run(ann_file, tmp_path, '--scenario', 'e', '--n-det', '20', '--n-seg', '5', '--seed', '4', name='c.json')
    assert c['det'] != a['det']
    with open(ann_file) as f:
        ann = json.load(f)
    random.Random(0).shuffle(ann['data_list'])
    shuffled = tmp_path / 'shuffled.json'
    shuffled.write_text(json.dumps(ann))
    d, _ = run(
        str(shuffled), tmp_path, '--scenario', 'e', '--n-det', '20', '--n-seg', '5', '--seed', '3', name='d.json')
    assert d == a


def test_fractions_give_the_papers_sizes():
    # 1/32 .. 1/2 of Cityscapes' 2,975 train images: 93, 186, 372, 744, 1,488 (section 4.1)
    assert [mps.parse_n(f'1/{k}', 2975, '--n-seg') for k in (32, 16, 8, 4, 2)] == [93, 186, 372, 744, 1488]
    assert mps.parse_n('93', 2975, '--n-seg') == 93
    with pytest.raises(ValueError, match='--n-seg'):
        mps.parse_n('half', 2975, '--n-seg')


@pytest.mark.parametrize('args, match', [
    (['--scenario', 'a', '--n-seg', '65'], r'--n-seg=65 but only 64 images'),
    (['--scenario', 'a', '--n-seg', '0'], r'--n-seg must be > 0'),
    (['--scenario', 'e', '--n-det', '-3', '--n-seg', '2'], r'--n-det must be > 0'),
    (['--scenario', 'a'], r'--n-seg is required'),
    (['--scenario', 'a', '--n-det', '10', '--n-seg', '4'], r'scenario a labels every image for detection'),
    (['--scenario', 'b', '--n-det', '8', '--n-seg', '4'], r'same size for both tasks'),
    (['--scenario', 'c'], r'give --n-det or --n-seg'),
    (['--scenario', 'd', '--n-det', '4', '--n-seg', '8'], r'must be <= --n-det'),
    (['--scenario', 'e', '--n-det', '100', '--n-seg', '4'], r'--n-det=100 but only 64'),
])
def test_bad_sizes_are_errors_naming_the_file(ann_file, tmp_path, args, match, capsys):
    message = error_line(capsys, [ann_file, *args, '-o', str(tmp_path / 'x.json')])
    assert message.startswith(f'{ann_file}: ') and re.search(match, message), message
    assert not (tmp_path / 'x.json').exists()
    with pytest.raises(ValueError, match=match):  # the same error, raised, without the command line
        mps.write_split(mps.parse_args([ann_file, *args, '-o', str(tmp_path / 'x.json')]))


def test_missing_annotation_file(tmp_path, capsys):
    missing = tmp_path / 'nope.json'
    assert error_line(capsys, [str(missing), '--scenario', 'b', '--n-det', '2', '-o',
                               str(tmp_path / 'x.json')]) == (f'{missing}: annotation file does not exist')


def test_truncated_annotation_file_names_the_file_line_and_column(ann_file, tmp_path, capsys):
    text = open(ann_file).read()
    cut = tmp_path / 'train.json'
    cut.write_text(text[:text.index('"labeled_tasks"', len(text) // 2)])  # an interrupted copy, all on line 1
    column = len(cut.read_text()) + 1
    expected = f'{cut}:1:{column}: invalid JSON: Expecting property name enclosed in double quotes'
    assert error_line(capsys, [str(cut), '--scenario', 'b', '--n-det', '2', '-o', str(tmp_path / 'x.json')]) == expected
    assert not (tmp_path / 'x.json').exists()


def test_converter_split_and_lowdata_config_together(tmp_path):
    root = str(tmp_path / 'cs')
    write_cityscapes(root, train_extra=None, sequence=False)
    load_tool('dataset_converters/cityscapes.py').convert(root)
    ann = osp.join(root, 'annotations', 'train.json')
    split = str(tmp_path / 'd.json')
    labeled = mps.main([ann, '--scenario', 'd', '--n-det', '2', '--n-seg', '1', '--seed', '0', '-o', split])['labeled']
    # supervised baselines (the config's filter_cfg): only the images labeled for at least one task
    assert len(build_dataset('cityscapes_lowdata.py', 'train_dataloader', root, split_file=split)) == 2
    ds = build_dataset('cityscapes_lowdata.py', 'train_dataloader', root, split_file=split, filter_cfg=None)
    assert len(ds) == 3  # filter_cfg=None: the image labeled for nothing stays (semi-supervised training)
    for i in range(3):
        info = ds.get_data_info(i)
        rel = osp.relpath(info['img_path'], root)
        assert info['labeled_tasks'] == tuple(t for t in ('det', 'seg') if rel in labeled[t])
    assert sum('det' in ds.get_data_info(i)['labeled_tasks'] for i in range(3)) == 2
    assert sum('seg' in ds.get_data_info(i)['labeled_tasks'] for i in range(3)) == 1
    # the config's placeholder fails loudly instead of training on the full labels
    with pytest.raises(FileNotFoundError, match='REPLACE_ME'):
        build_dataset('cityscapes_lowdata.py', 'train_dataloader', root)
    # a split naming an image that is not in the annotation file is an error naming it
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(dict(labeled=dict(det=['leftImg8bit/train/x/x_000000_000019_leftImg8bit.png']))))
    with pytest.raises(ValueError, match='x_000000_000019_leftImg8bit.png'):
        build_dataset('cityscapes_lowdata.py', 'train_dataloader', root, split_file=str(bad))


@pytest.fixture(scope='module')
def three_task_ann(tmp_path_factory):
    """40 images: all labeled for det, the even ones for seg, the first 30 for a third task."""
    path = tmp_path_factory.mktemp('split3') / 'train.json'
    data_list = [
        dict(
            img_path=img(i),
            height=8,
            width=8,
            instances=[],
            labeled_tasks=['det'] + (['seg'] if i % 2 == 0 else []) + (['attr'] if i < 30 else [])) for i in range(40)
    ]
    path.write_text(json.dumps(dict(metainfo=dict(classes=['car']), data_list=data_list)))
    return str(path)


def test_per_task_counts_for_any_tasks(three_task_ann, tmp_path, capsys):
    labeled, meta = run(three_task_ann, tmp_path, '--n', 'attr=1/3', '--n', 'seg=5', '--seed', '2')
    assert len(labeled['attr']) == 10 and set(labeled['attr']) <= {img(i) for i in range(30)}
    assert len(labeled['seg']) == 5 and all(int(p.split('_')[1]) % 2 == 0 for p in labeled['seg'])
    assert labeled['det'] == sorted(img(i) for i in range(40))  # no count: every det label kept
    assert meta['counts'] == dict(attr=10, seg=5, det=40) and meta['drawn'] == ['attr', 'seg']
    assert meta['overlap'] == len(set(labeled['attr']) & set(labeled['seg']))
    assert 'det 40 (all kept)' in capsys.readouterr().out
    assert run(three_task_ann, tmp_path, '--n', 'attr=1/3', '--n', 'seg=5', '--seed', '2')[0] == labeled


def test_a_scenario_keeps_the_other_tasks_whole_or_draws_them(three_task_ann, tmp_path):
    labeled, meta = run(three_task_ann, tmp_path, '--scenario', 'a', '--n-seg', '4')
    assert len(labeled['seg']) == 4 and len(labeled['attr']) == 30 and meta['n_seg'] == 4
    labeled, _ = run(three_task_ann, tmp_path, '--scenario', 'b', '--n-det', '4', '--n', 'attr=3')
    assert labeled['det'] == labeled['seg'] and len(labeled['det']) == 4 and len(labeled['attr']) == 3


@pytest.mark.parametrize('args, match', [
    (['--n', 'depth=3'], r"no image is labeled for 'depth'"),
    (['--n', 'attr=31'], r'--n attr=31 but only 30 images'),
    (['--n', 'attr'], r'expected TASK=N'),
    (['--n', 'seg=2', '--n', 'seg=3'], r"'seg' given twice"),
    ([], r'--n TASK=N\) or a --scenario'),
    (['--scenario', 'c', '--n-det', '4', '--n', 'det=3'], r'not --n'),
])
def test_bad_counts_are_errors_naming_the_file(three_task_ann, tmp_path, args, match, capsys):
    message = error_line(capsys, [three_task_ann, *args, '-o', str(tmp_path / 'x.json')])
    assert message.startswith(f'{three_task_ann}: ') and re.search(match, message), message
