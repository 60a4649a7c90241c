"""tools/dataset_converters/cityscapes.py on a tiny tree in the official format (tests/official_fixtures.py)."""
import json
import os
import os.path as osp
import subprocess
import sys
from collections import Counter

import cv2
import numpy as np
import pytest
from PIL import Image

from official_fixtures import REPO, build_dataset, load_tool, write_cityscapes

cs = load_tool('dataset_converters/cityscapes.py')

AACHEN_0 = 'leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png'
AACHEN_1 = 'leftImg8bit/train/aachen/aachen_000001_000019_leftImg8bit.png'
BREMEN = 'leftImg8bit/train/bremen/bremen_000000_000019_leftImg8bit.png'
FRANKFURT = 'leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png'
# hand-computed from the rectangles of official_fixtures.AACHEN_0_OBJECTS: x2 = max_x + 1, y2 = max_y + 1;
# instances in order of their pixel value, then one ignore box per crowd class; no box for the caravan
AACHEN_0_INSTANCES = [
    dict(bbox=[52, 5, 56, 17], label='person', ignore_flag=0),  # 24000
    dict(bbox=[35, 30, 39, 38], label='rider', ignore_flag=0),  # 25000
    dict(bbox=[10, 20, 31, 30], label='car', ignore_flag=0),  # 26001: both pieces around the pole
    dict(bbox=[40, 12, 50, 16], label='car', ignore_flag=0),  # 26002
    dict(bbox=[33, 33, 42, 40], label='bicycle', ignore_flag=0),  # 33000, partly hidden by the rider
    dict(bbox=[60, 25, 75, 38], label='person', ignore_flag=1),  # crowd (bare 24) in two places
    dict(bbox=[2, 2, 7, 5], label='car', ignore_flag=1),  # crowd (bare 26)
]
FRANKFURT_INSTANCES = [
    dict(bbox=[5, 10, 25, 20], label='bus', ignore_flag=0),
    dict(bbox=[40, 20, 70, 30], label='train', ignore_flag=0),
    dict(bbox=[0, 30, 4, 34], label='motorcycle', ignore_flag=0),
]


def load(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cityscapes'))
    write_cityscapes(root)
    summary = cs.main([root])
    return root, summary


def by_path(ann):
    return {e['img_path']: e for e in ann['data_list']}


def test_boxes_from_instance_ids(converted):
    root, _ = converted
    train = by_path(load(osp.join(root, 'annotations', 'train.json')))
    assert sorted(train) == sorted([AACHEN_0, AACHEN_1, BREMEN])
    e = train[AACHEN_0]
    assert e['instances'] == AACHEN_0_INSTANCES
    assert (e['height'], e['width'], e['labeled_tasks']) == (40, 80, ['det', 'seg'])
    assert e['seg_map_path'] == 'gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png'
    # an image without objects is labeled for det with zero boxes (all-negative), not unlabeled
    assert train[AACHEN_1]['instances'] == [] and train[AACHEN_1]['labeled_tasks'] == ['det', 'seg']
    assert train[BREMEN]['instances'] == [dict(bbox=[10, 10, 30, 20], label='truck', ignore_flag=0)]
    val = load(osp.join(root, 'annotations', 'val.json'))
    assert [e['img_path'] for e in val['data_list']] == [FRANKFURT]
    assert val['data_list'][0]['instances'] == FRANKFURT_INSTANCES


def test_metainfo_matches_the_official_table_and_the_config(converted):
    from mmengine.config import Config
    root, _ = converted
    meta = load(osp.join(root, 'annotations', 'train.json'))['metainfo']
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets', 'cityscapes_multitask.py'))
    assert meta['classes'] == list(
        cfg.det_classes) == ['person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle']
    assert meta['seg_classes'] == list(cfg.seg_classes) and len(meta['seg_classes']) == 19
    assert meta['palette'] == [list(c) for c in cfg.det_palette]
    assert meta['seg_palette'] == [list(c) for c in cfg.seg_palette]


def test_label_train_ids(converted):
    root, _ = converted
    path = osp.join(root, 'gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png')
    with Image.open(path) as im:
        assert im.mode == 'L' and im.size == (80, 40)
        tid = np.array(im)
    # (row, col) -> trainId, by hand: sky 10, building 2, road 0, pole 5, car 13, person 11, rider 12,
    # bicycle 18, caravan (no trainId) 255, parking (no trainId) 255, crowd pixels keep their class
    expected = {
        (0, 0): 10,
        (0, 70): 2,
        (39, 79): 0,
        (30, 20): 5,
        (25, 12): 13,
        (25, 28): 13,
        (10, 53): 11,
        (32, 36): 12,
        (38, 34): 18,
        (32, 2): 255,
        (37, 50): 255,
        (27, 62): 11,
        (3, 4): 13
    }
    for (y, x), v in expected.items():
        assert tid[y, x] == v, (y, x)
    assert set(np.unique(tid).tolist()) == {0, 2, 5, 10, 11, 12, 13, 18, 255}
    # the whole map against an independent id -> trainId table of the ids the fixture uses
    table = {7: 0, 11: 2, 17: 5, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    label_ids = cv2.imread(path.replace('labelTrainIds', 'labelIds'), cv2.IMREAD_UNCHANGED)
    ref = np.vectorize(lambda i: table.get(int(i), 255))(label_ids)
    assert np.array_equal(tid, ref)


def test_summary_counts(converted, capsys):
    root, summary = converted
    assert summary['train']['images'] == 3 and summary['val']['images'] == 1
    assert summary['train']['boxes'] == Counter(person=1, rider=1, car=2, truck=1, bicycle=1)
    assert summary['train']['ignore'] == Counter(person=1, car=1)
    assert summary['train']['skipped_instances'] == Counter(caravan=1)
    assert summary['val']['boxes'] == Counter(bus=1, train=1, motorcycle=1)
    assert summary['train_extra']['images'] == 2 and summary['sequence']['images'] == 2
    assert summary['sequence_frames_of_train_images'] == 2
    text = cs.format_summary(summary)
    assert 'train: 3 images' in text and 'caravan 1' in text and 'person 1, rider 0, car 1' in text


def test_train_extra_and_sequence_are_unlabeled(converted):
    root, _ = converted
    extra = load(osp.join(root, 'annotations', 'train_extra.json'))['data_list']
    assert [e['img_path'] for e in extra] == [
        'leftImg8bit/train_extra/augsburg/augsburg_000000_000000_leftImg8bit.png',
        'leftImg8bit/train_extra/augsburg/augsburg_000000_000001_leftImg8bit.png'
    ]
    seq = load(osp.join(root, 'annotations', 'sequence.json'))['data_list']
    # the frames that are train images themselves (..._000019) and the val sequence are left out
    assert [e['img_path'] for e in seq] == [
        'leftImg8bit_sequence/train/aachen/aachen_000000_000018_leftImg8bit.png',
        'leftImg8bit_sequence/train/aachen/aachen_000000_000020_leftImg8bit.png'
    ]
    for e in extra + seq:
        assert e['labeled_tasks'] == [] and e['instances'] == [] and 'seg_map_path' not in e
        assert (e['height'], e['width']) == (40, 80)


def test_other_train_extra_layout_and_no_sequence(tmp_path):
    root = str(tmp_path)
    write_cityscapes(root, train_extra='trainextra', sequence=False)
    summary = cs.convert(root, osp.join(root, 'out'))
    extra = load(osp.join(root, 'out', 'train_extra.json'))['data_list']
    assert extra[0]['img_path'] == ('leftImg8bit_trainextra/leftImg8bit/train_extra/augsburg/'
                                    'augsburg_000000_000000_leftImg8bit.png')
    assert 'sequence' not in summary and not osp.exists(osp.join(root, 'out', 'sequence.json'))
    assert 'sequence: not found (optional)' in cs.format_summary(summary)


def test_train_id_maps_are_kept_when_up_to_date_and_nproc_gives_the_same_files(tmp_path, capsys):
    root = str(tmp_path)
    write_cityscapes(root, train_extra=None, sequence=False)
    first = cs.main([root, '-o', osp.join(root, 'a')])
    assert first['train']['train_id_maps_written'] == 3
    again = cs.main([root, '-o', osp.join(root, 'b'), '--nproc', '2'])
    assert again['train']['train_id_maps_written'] == 0 and again['train']['train_id_maps_kept'] == 3
    assert load(osp.join(root, 'a', 'train.json')) == load(osp.join(root, 'b', 'train.json'))
    forced = cs.main([root, '-o', osp.join(root, 'c'), '--overwrite'])
    assert forced['val']['train_id_maps_written'] == 1
    assert 'Cityscapes conversion summary' in capsys.readouterr().out


def test_converted_files_load_through_the_dataset_configs(converted, tmp_path):
    root, _ = converted
    train = build_dataset('cityscapes_multitask.py', 'train_dataloader', root)
    assert len(train) == 3
    info = train.get_data_info(0)
    assert info['img_path'] == osp.join(root, AACHEN_0)
    labels = [train.metainfo['classes'][i['bbox_label']] for i in info['instances']]
    assert labels == [i['label'] for i in AACHEN_0_INSTANCES]
    out = train[0]  # the full train pipeline: load, resize, crop, flip, pack
    sample = out['data_samples']
    assert sample.labeled_tasks == ('det', 'seg')
    # random resize + crop may cut boxes: what survives is a subset of the image's classes
    assert set(sample.gt_instances.labels.tolist()) <= {0, 1, 2, 7}  # person, rider, car, bicycle
    assert set(sample.ignored_instances.labels.tolist()) <= {0, 2}  # crowd person, crowd car
    assert sample.gt_sem_seg.sem_seg.shape[-2:] == out['inputs'].shape[-2:]
    val = build_dataset('cityscapes_multitask.py', 'val_dataloader', root)
    out = val[0]
    assert out['data_samples'].gt_instances.bboxes.tensor.tolist() == [i['bbox'] for i in FRANKFURT_INSTANCES]
    assert set(out['data_samples'].gt_sem_seg.sem_seg.unique().tolist()) <= {0, 2, 10, 15, 16, 17, 255}
    extra = build_dataset('cityscapes_train_extra.py', 'train_dataloader', root)
    assert len(extra) == 3 + 2
    assert [extra.get_data_info(i)['labeled_tasks'] for i in range(5)] == [('det', 'seg')] * 3 + [()] * 2
    assert extra[4]['data_samples'].labeled_tasks == ()
    seq = build_dataset('cityscapes_sequence.py', 'train_dataloader', root)
    assert len(seq) == 3 + 2 + 2
    split = tmp_path / 'split.json'
    split.write_text(json.dumps(dict(labeled=dict(det=[AACHEN_0, BREMEN], seg=[AACHEN_1]))))
    low = build_dataset('cityscapes_lowdata.py', 'train_dataloader', root, split_file=str(split))
    assert [low.get_data_info(i)['labeled_tasks'] for i in range(3)] == [('det', ), ('seg', ), ('det', )]


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture
def tree(tmp_path):
    root = str(tmp_path / 'cs')
    write_cityscapes(root, train_extra=None, sequence=False)
    return root


def test_missing_label_file_is_named(tree):
    path = osp.join(tree, 'gtFine/train/bremen/bremen_000000_000019_gtFine_instanceIds.png')
    os.remove(path)
    with pytest.raises(FileNotFoundError, match='bremen_000000_000019_gtFine_instanceIds.png'):
        cs.convert(tree)


def test_missing_image_is_named(tree):
    os.remove(osp.join(tree, BREMEN))
    with pytest.raises(FileNotFoundError, match='bremen_000000_000019_leftImg8bit.png'):
        cs.convert(tree)


def test_label_map_of_another_size_is_named(tree):
    path = osp.join(tree, 'gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png')
    cv2.imwrite(path, np.full((20, 80), 7, np.uint8))
    with pytest.raises(ValueError, match='frankfurt_000000_000294_gtFine_labelIds.png.*differs'):
        cs.convert(tree)


def test_instance_of_an_unknown_class_is_named(tree):
    path = osp.join(tree, 'gtFine/train/bremen/bremen_000000_000019_gtFine_instanceIds.png')
    inst = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    inst[0, 0] = 40001  # label id 40 does not exist
    cv2.imwrite(path, inst)
    with pytest.raises(ValueError, match='bremen_000000_000019_gtFine_instanceIds.png.*label id 40'):
        cs.convert(tree)


def test_empty_or_missing_split_directory_is_named(tree, tmp_path):
    val_dir = osp.join(tree, 'leftImg8bit', 'val', 'frankfurt')
    for f in os.listdir(val_dir):
        os.remove(osp.join(val_dir, f))
    with pytest.raises(ValueError, match=r'leftImg8bit/val: no image'):
        cs.convert(tree)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        cs.convert(str(tmp_path / 'nowhere'))
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match=r'empty/leftImg8bit/train does not exist'):
        cs.convert(str(tmp_path / 'empty'))


def test_cli_help():
    out = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/dataset_converters/cityscapes.py'), '--help'],
        capture_output=True,
        text=True,
        timeout=120)
    assert out.returncode == 0 and '--nproc' in out.stdout and '--overwrite' in out.stdout
