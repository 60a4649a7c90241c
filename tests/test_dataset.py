"""MultiTaskDataset, its loading/packing transforms, and their errors on bad input."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmdet.registry import DATASETS
from mmengine.config import Config

import mtssl_mm  # noqa: F401
from fixtures import TINY_CONFIG, write_dataset


def build(root, split='train', **overrides):
    cfg = Config.fromfile(TINY_CONFIG)
    key = 'train_dataloader' if split == 'train' else 'val_dataloader'
    ds_cfg = cfg[key].dataset
    ds_cfg.data_root = root
    ds_cfg.update(overrides)
    return DATASETS.build(ds_cfg)


def test_labeled_tasks_travel_through_the_train_pipeline(partial_root):
    from conftest import PARTIAL
    ds = build(partial_root, filter_cfg=None)
    assert len(ds) == len(PARTIAL)
    for i, tasks in enumerate(PARTIAL):
        assert ds.labeled_tasks(i) == tasks
        packed = ds[i]  # random resize, crop and flip
        sample = packed['data_samples']
        assert sample.labeled_tasks == tasks
        seg = sample.gt_sem_seg.sem_seg
        assert seg.shape[-2:] == packed['inputs'].shape[-2:]
        if 'seg' not in tasks:
            assert (seg == 255).all(), 'a sample unlabeled for seg must carry an all-ignore map'
        else:
            assert (seg != 255).any()
        if 'det' not in tasks:
            assert len(sample.gt_instances) == 0


def test_filter_cfg_any_all(partial_root):
    assert len(build(partial_root)) == 5  # labeled='any' drops the image labeled for nothing
    full = build(partial_root, filter_cfg=dict(labeled='all'))
    assert [full.labeled_tasks(i) for i in range(len(full))] == [('det', 'seg')] * 2
    det_only = build(partial_root, tasks=('det', ))
    assert len(det_only) == 4 and all(det_only.labeled_tasks(i) == ('det', ) for i in range(4))
    with pytest.raises(KeyError, match='labeld'):
        build(partial_root, filter_cfg=dict(labeld='any'))


def test_val_sample_keeps_original_resolution_and_instances(partial_root):
    ds = build(partial_root, split='val')
    out = ds[0]
    assert tuple(out['inputs'].shape[-2:]) == (64, 128)
    assert out['data_samples'].gt_sem_seg.sem_seg.shape == (1, 64, 128)
    insts = out['data_samples'].instances
    assert len(insts) == len(out['data_samples'].gt_instances) > 0
    assert all(inst['bbox_label'] == 2 for inst in insts)  # 'car'


def test_crowd_boxes_become_ignored_instances(tmp_path):
    root = str(tmp_path)
    crowd = dict(bbox=[0, 30, 20, 60], label='person', ignore_flag=1)
    write_dataset(root, [('det', )], extra_instances={0: [crowd]})
    sample = build(
        root,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadMultiTaskAnnotations'),
            dict(type='PackMultiTaskInputs')
        ])[0]['data_samples']
    assert len(sample.ignored_instances) == 1
    assert sample.ignored_instances.labels.tolist() == [0]
    assert (sample.gt_instances.labels == 2).all()


def test_unknown_class_name_names_file_and_class(tmp_path):
    root = str(tmp_path)
    write_dataset(root, [('det', )], extra_instances={0: [dict(bbox=[0, 0, 5, 5], label='spaceship')]})
    with pytest.raises(ValueError, match=r"train\.json.*unknown class name 'spaceship'"):
        build(root)


def test_missing_image_names_the_file(tmp_path):
    root = str(tmp_path)
    ann = write_dataset(root, [('det', 'seg')])
    os.remove(osp.join(root, ann['data_list'][0]['img_path']))
    ds = build(root)
    with pytest.raises(FileNotFoundError, match='toycity_000000_000019_leftImg8bit.png'):
        ds[0]


def test_missing_seg_map_names_the_file(tmp_path):
    root = str(tmp_path)
    ann = write_dataset(root, [('det', 'seg')])
    os.remove(osp.join(root, ann['data_list'][0]['seg_map_path']))
    ds = build(root)
    with pytest.raises(FileNotFoundError, match='seg map .*gtFine_labelTrainIds.png'):
        ds[0]


def test_wrong_sized_seg_map_names_the_file(tmp_path):
    root = str(tmp_path)
    ann = write_dataset(root, [('seg', )])
    cv2.imwrite(osp.join(root, ann['data_list'][0]['seg_map_path']), np.zeros((32, 64), np.uint8))
    ds = build(root)
    with pytest.raises(ValueError, match=r'gtFine_labelTrainIds.png: size 64x32 .*differs.*128x64'):
        ds[0]


def test_missing_annotation_file_and_bad_task_names(tmp_path):
    with pytest.raises(FileNotFoundError, match='annotations/train.json'):
        build(str(tmp_path))
    root = str(tmp_path / 'd')
    write_dataset(root, [('det', 'depth')])
    with pytest.raises(ValueError, match="unknown task.*'depth'"):
        build(root)


def test_split_file_relabels_and_validates(tmp_path, partial_root):
    from conftest import PARTIAL
    ann = json.load(open(osp.join(partial_root, 'annotations', 'train.json')))
    names = [d['img_path'] for d in ann['data_list']]
    split = tmp_path / 'split.json'
    split.write_text(json.dumps(dict(labeled=dict(det=[names[0], names[1]], seg=[names[2]]))))
    ds = build(partial_root, split_file=str(split), filter_cfg=None)
    assert [ds.labeled_tasks(i) for i in range(len(PARTIAL))][:3] == [('det', ), ('det', ), ('seg', )]
    assert ds.labeled_tasks(4) == ()
    # an image listed for a task it has no labels for
    split.write_text(json.dumps(dict(labeled=dict(seg=[names[1]]))))
    with pytest.raises(ValueError, match='has no seg labels'):
        build(partial_root, split_file=str(split))
    # an image that does not exist
    split.write_text(json.dumps(dict(labeled=dict(det=['nope.png']))))
    with pytest.raises(ValueError, match="split.json: image 'nope.png'"):
        build(partial_root, split_file=str(split))
    split.write_text('[1, 2]')
    with pytest.raises(ValueError, match='split.json: expected'):
        build(partial_root, split_file=str(split))


def test_seg_class_list_of_file_and_config_must_agree(tmp_path):
    root = str(tmp_path)
    write_dataset(root, [('seg', )])
    from toy_data import SEG_CLASSES
    swapped = list(SEG_CLASSES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(ValueError, match='seg_classes .* differ'):
        build(root, metainfo=dict(seg_classes=swapped))


def test_relative_split_file_is_relative_to_data_root(tmp_path, partial_root):
    ann = json.load(open(osp.join(partial_root, 'annotations', 'train.json')))
    os.makedirs(osp.join(partial_root, 'splits'), exist_ok=True)
    with open(osp.join(partial_root, 'splits', 'one.json'), 'w') as f:
        json.dump(dict(labeled=dict(det=[ann['data_list'][0]['img_path']])), f)
    ds = build(partial_root, split_file='splits/one.json', filter_cfg=dict(labeled='any'))
    assert len(ds) == 1 and ds.labeled_tasks(0) == ('det', )


def test_truncated_annotation_or_split_file_names_the_file_line_and_column(tmp_path, partial_root):
    """A truncated annotation or split file: a ValueError naming the file and where it breaks off."""
    import re
    ann = json.load(open(osp.join(partial_root, 'annotations', 'train.json')))
    text = json.dumps(ann, indent=1)
    cut = text[:text.index('"instances"', len(text) // 2)]  # ends with ',\n<indent>': a property name is missing
    root = tmp_path / 'cut'
    os.makedirs(root / 'annotations')
    path = root / 'annotations' / 'train.json'
    path.write_text(cut)
    line, column = cut.count('\n') + 1, len(cut) - cut.rfind('\n')  # the end of the file
    assert line > 10
    with pytest.raises(ValueError, match=re.escape(f'{path}: invalid JSON at line {line}, column {column}: ')):
        build(str(root))
    # a split file cut inside its 4th line, in the middle of an image name
    split = tmp_path / 'split.json'
    split.write_text('{\n "labeled": {\n  "det": [\n   "' + ann['data_list'][0]['img_path'][:10])
    with pytest.raises(ValueError, match=re.escape(f'{split}: invalid JSON at line 4, column 4: Unterminated string')):
        build(partial_root, split_file=str(split))


def test_a_task_file_adds_labels_of_one_task(tmp_path):
    """task_ann_files: the listed images become labeled for the task with its fields; errors name both files."""
    root = str(tmp_path)
    ann = write_dataset(root, [('det', ), ('det', ), ()], split='train', seed=3)
    seg_rel = ann['data_list'][0]['img_path'].replace('leftImg8bit/', 'gtFine/',
                                                      1).replace('_leftImg8bit.png', '_gtFine_labelTrainIds.png')
    task_file = dict(
        metainfo=dict(seg_classes=ann['metainfo']['seg_classes']),
        data_list=[dict(img_path=ann['data_list'][0]['img_path'], seg_map_path=seg_rel)])
    with open(osp.join(root, 'seg.json'), 'w') as f:
        json.dump(task_file, f)
    ds = build(root, filter_cfg=None, task_ann_files=dict(seg='seg.json'))
    assert [ds.labeled_tasks(i) for i in range(3)] == [('det', 'seg'), ('det', ), ()]
    assert (ds[0]['data_samples'].gt_sem_seg.sem_seg != 255).any()
    assert ds.metainfo['tasks'] == ('det', 'seg')
    for bad, match in ((dict(img_path='nope.png'), r"bad.json: image 'nope.png' is not in .*train.json"),
                       (dict(img_path=ann['data_list'][0]['img_path'],
                             labeled_tasks=['seg']), r"field\(s\) \['labeled_tasks'\] are in .*train.json too")):
        with open(osp.join(root, 'bad.json'), 'w') as f:
            json.dump(dict(metainfo={}, data_list=[bad]), f)
        with pytest.raises(ValueError, match=match):
            build(root, filter_cfg=None, task_ann_files=dict(seg='bad.json'))
    with pytest.raises(KeyError, match="unknown task 'depth'"):
        build(root, task_ann_files=dict(depth='seg.json'))


def test_tasks_default_to_those_of_the_file_and_the_evaluator_follows_the_dataset(partial_root):
    from mmdet.registry import METRICS
    ds = build(partial_root, split='val', tasks=None)
    assert ds.tasks == ('det', 'seg') and ds.metainfo['tasks'] == ('det', 'seg')
    seg_only = build(partial_root, split='val', tasks=('seg', ))
    metric = METRICS.build(dict(type='MultiTaskMetric'))
    metric.dataset_meta = seg_only.metainfo
    assert list(metric.task_metrics) == ['seg']
    both = METRICS.build(dict(type='MultiTaskMetric', tasks=['det', 'seg']))
    with pytest.raises(ValueError, match=r"task\(s\) \['det'\] are evaluated but the dataset does not serve them"):
        both.dataset_meta = seg_only.metainfo
    with pytest.raises(TypeError, match='sequence of task names'):
        build(partial_root, tasks='det')
