"""tools/dataset_converters/bdd100k.py on a tiny tree in the official format (tests/official_fixtures.py)."""
import json
import os
import os.path as osp
import subprocess
import sys
from collections import Counter

import cv2
import numpy as np
import pytest

from official_fixtures import (REPO, S1, V1, V2, A, B, C, D, E, F, bdd_det_frames, bdd_mask, build_dataset, load_tool,
                               write_bdd100k)

bdd = load_tool('dataset_converters/bdd100k.py')


def img100(split, name):
    return f'images/100k/{split}/{name}.jpg'


def img10(split, name):
    return f'images/10k/{split}/{name}.jpg'


def mask(split, name):
    return f'labels/sem_seg/masks/{split}/{name}.png'


# Scalabel box2d includes its x2/y2 pixel: written as [x1, y1, x2 + 1, y2 + 1]
A_INSTANCES = [
    dict(bbox=[2.5, 3.0, 21.25, 16.0], label='car', ignore_flag=0),
    dict(bbox=[30.0, 4.0, 36.0, 21.0], label='pedestrian', ignore_flag=0),  # legacy 'person'
    dict(bbox=[40.0, 10.0, 48.0, 19.0], label='bicycle', ignore_flag=0),  # legacy 'bike'
    dict(bbox=[50.0, 10.0, 58.0, 19.0], label='motorcycle', ignore_flag=0),  # legacy 'motor'
    dict(bbox=[1.0, 20.0, 5.0, 29.0], label='pedestrian', ignore_flag=1),  # 'other person'
    dict(bbox=[10.0, 20.0, 31.0, 31.0], label='truck', ignore_flag=1),  # 'trailer'
    dict(bbox=[40.0, 20.0, 61.0, 31.0], label='car', ignore_flag=1),  # crowd: true
    dict(bbox=[5.0, 5.0, 10.0, 10.0], label='car', ignore_flag=1),  # 'other vehicle'
]  # the lane and the drivable area (no box2d) are skipped
B_INSTANCES = [
    dict(bbox=[1.0, 1.0, 4.0, 7.0], label='traffic light', ignore_flag=0),
    dict(bbox=[10.0, 1.0, 15.0, 6.0], label='traffic sign', ignore_flag=0),
    dict(bbox=[20.0, 2.0, 61.0, 21.0], label='train', ignore_flag=0),  # crowd: false keeps it a positive
]


def load(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bdd100k'))
    write_bdd100k(root)
    summary = bdd.main([root])
    return root, summary


def test_train_merges_det_and_seg_by_name(converted):
    root, _ = converted
    train = load(osp.join(root, 'annotations', 'train.json'))['data_list']
    got = {e['img_path']: e for e in train}
    # V1 is in 10k-train but its name is in 100k-val: removed; B is in both sets: one entry, labeled for both
    assert sorted(got) == sorted([
        img100('train', A),
        img100('train', B),
        img100('train', C),
        img100('train', D),
        img10('train', E),
        img10('train', F)
    ])
    assert got[img100('train', A)]['labeled_tasks'] == ['det'] and 'seg_map_path' not in got[img100('train', A)]
    assert got[img100('train', A)]['instances'] == A_INSTANCES
    b = got[img100('train', B)]
    assert b['labeled_tasks'] == ['det', 'seg'] and b['seg_map_path'] == mask('train', B)
    assert b['instances'] == B_INSTANCES
    e = got[img10('train', E)]
    assert e['labeled_tasks'] == ['seg'] and e['seg_map_path'] == mask('train', E) and e['instances'] == []
    # no label entry (D, F) or a frame without a labels list (C): kept, labeled for nothing
    for path in (img100('train', C), img100('train', D), img10('train', F)):
        assert got[path]['labeled_tasks'] == [] and got[path]['instances'] == []
        assert 'seg_map_path' not in got[path]
    for entry in train:
        assert (entry['height'], entry['width']) == (32, 64)
        assert list(entry)[:3] == ['img_path', 'height', 'width']


def test_val_has_two_single_task_subsets(converted):
    root, _ = converted
    val = load(osp.join(root, 'annotations', 'val.json'))['data_list']
    assert [(e['img_path'], e['labeled_tasks']) for e in val] == [(img100('val', V1), ['det']),
                                                                  (img100('val', V2), ['det']),
                                                                  (img10('val', S1), ['seg'])]
    assert val[0]['instances'] == [dict(bbox=[0.0, 0.0, 11.0, 11.0], label='bus', ignore_flag=0)]
    assert [i['label'] for i in val[1]['instances']] == ['rider', 'truck', 'pedestrian', 'motorcycle', 'bicycle']
    assert val[2]['seg_map_path'] == mask('val', S1) and 'seg_map_path' not in val[0]


def test_metainfo_and_summary(converted):
    from mmengine.config import Config
    root, summary = converted
    meta = load(osp.join(root, 'annotations', 'train.json'))['metainfo']
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets', 'bdd100k_multitask.py'))
    assert meta['classes'] == list(cfg.det_classes) == [
        'pedestrian', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle', 'traffic light', 'traffic sign'
    ]
    assert meta['palette'] == [list(c) for c in cfg.det_palette]
    assert meta['seg_classes'] == list(cfg.seg_classes) and meta['seg_palette'] == [list(c) for c in cfg.seg_palette]
    assert cfg.num_det_classes == 10
    t = summary['train']
    assert (t['images'], t['det'], t['seg'], t['both'], t['unlabeled']) == (6, 2, 2, 1, 3)
    assert summary['removed_10k_train_in_100k_val'] == 1 and t['masks_of_removed_images'] == 1
    assert t['boxless'] == Counter({'lane': 1, 'drivable area': 1})
    assert t['frames_without_labels'] == 1
    assert t['boxes'] == Counter({
        'car': 1,
        'pedestrian': 1,
        'bicycle': 1,
        'motorcycle': 1,
        'traffic light': 1,
        'traffic sign': 1,
        'train': 1
    })
    assert t['ignore'] == Counter({'pedestrian': 1, 'truck': 1, 'car': 2})
    v = summary['val']
    assert (v['images'], v['det'], v['seg'], v['names_in_both_subsets']) == (3, 2, 1, 0)
    text = bdd.format_summary(summary)
    assert 'removed: 1 10k-train images' in text and 'drivable area 1, lane 1' in text


def test_converted_files_load_through_the_dataset_config(converted):
    root, _ = converted
    train = build_dataset('bdd100k_multitask.py', 'train_dataloader', root, filter_cfg=None)
    assert len(train) == 6
    assert [train.get_data_info(i)['labeled_tasks'] for i in range(6)] == [('det', ), ('det', 'seg'), (), (), ('seg', ),
                                                                           ()]
    assert len(build_dataset('bdd100k_multitask.py', 'train_dataloader', root)) == 3  # labeled='any'
    sample = train[1]['data_samples']
    assert sample.labeled_tasks == ('det', 'seg')
    val = build_dataset('bdd100k_multitask.py', 'val_dataloader', root)
    det_sample = val[0]['data_samples']
    assert det_sample.labeled_tasks == ('det', )
    assert det_sample.gt_instances.bboxes.tensor.tolist() == [[0.0, 0.0, 11.0, 11.0]]
    assert det_sample.gt_instances.labels.tolist() == [4]  # bus
    seg_sample = val[2]['data_samples']
    assert seg_sample.labeled_tasks == ('seg', )
    assert np.array_equal(seg_sample.gt_sem_seg.sem_seg[0].numpy(), bdd_mask(S1))


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / 'bdd')
    write_bdd100k(root)
    return root


def write_frames(root, split, frames):
    with open(osp.join(root, 'labels', 'det_20', f'det_{split}.json'), 'w') as f:
        json.dump(frames, f)


def test_unknown_category_names_the_file_and_the_category(tree):
    frames = bdd_det_frames()['train']
    frames[1]['labels'].append(dict(id='9', category='unicorn', box2d=dict(x1=0, y1=0, x2=3, y2=3)))
    write_frames(tree, 'train', frames)
    with pytest.raises(ValueError, match=r"det_train\.json: frame b0000002-00000002\.jpg: unknown category 'unicorn'"):
        bdd.convert(tree)


def test_frame_without_image_is_named(tree):
    os.remove(osp.join(tree, img100('train', A)))
    with pytest.raises(FileNotFoundError, match=r'det_train\.json: frame a0000001-00000001\.jpg'):
        bdd.convert(tree)


def test_mask_of_another_size_is_named(tree):
    cv2.imwrite(osp.join(tree, mask('train', E)), np.zeros((16, 64), np.uint8))
    with pytest.raises(ValueError, match=r'masks/train/e0000005-00000005\.png: size 64x16 .*differs'):
        bdd.convert(tree)


def test_mask_without_image_is_named(tree):
    os.remove(osp.join(tree, img10('train', E)))
    with pytest.raises(FileNotFoundError, match=r'masks/train/e0000005-00000005\.png: its image'):
        bdd.convert(tree)


def test_reversed_box_is_named(tree):
    frames = bdd_det_frames()['val']
    frames[0]['labels'][0]['box2d'] = dict(x1=10, y1=0, x2=5, y2=3)
    write_frames(tree, 'val', frames)
    with pytest.raises(ValueError, match=r'det_val\.json: frame 90000007-00000007\.jpg: box2d'):
        bdd.convert(tree)


def test_empty_or_missing_directories_are_named(tree, tmp_path):
    d = osp.join(tree, 'images', '10k', 'val')
    for f in os.listdir(d):
        os.remove(osp.join(d, f))
    with pytest.raises(ValueError, match=r'images/10k/val: no'):
        bdd.convert(tree)
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match=r'empty/images/100k/train does not exist'):
        bdd.convert(str(tmp_path / 'empty'))


def test_scalabel_frames_object_and_cli(tree):
    frames = bdd_det_frames()['val']
    write_frames(tree, 'val', dict(frames=frames, config=dict(imageSize=dict(width=64, height=32))))
    out = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools/dataset_converters/bdd100k.py'), tree, '-o',
        osp.join(tree, 'out'), '--nproc', '2'
    ],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'BDD100K merge summary' in out.stdout
    val = load(osp.join(tree, 'out', 'val.json'))['data_list']
    assert [e['labeled_tasks'] for e in val] == [['det'], ['det'], ['seg']]


def test_truncated_label_file_names_the_file_line_and_column(tree):
    """An interrupted download: a ValueError naming det_train.json and where it breaks off (``file:line:col``), not
    a bare JSONDecodeError (converter function); on the command line one line and exit status 2, no traceback."""
    import re
    text = json.dumps(bdd_det_frames()['train'], indent=1)
    cut = text[:text.index('"box2d"', len(text) // 2)]  # ends with ',\n<indent>': a property name is missing
    path = osp.join(tree, 'labels', 'det_20', 'det_train.json')
    with open(path, 'w') as f:
        f.write(cut)
    line, column = cut.count('\n') + 1, len(cut) - cut.rfind('\n')  # the end of the file
    assert line > 10
    expected = f'{path}:{line}:{column}: invalid JSON: Expecting property name enclosed in double quotes'
    with pytest.raises(ValueError, match=re.escape(expected)):
        bdd.convert(tree)
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools/dataset_converters/bdd100k.py'), tree],
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert out.returncode == 2 and out.stderr == f'bdd100k.py: error: {expected}\n', out.stderr[-3000:]
