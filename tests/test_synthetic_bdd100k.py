"""tools/synthetic_bdd100k.py: the official BDD100K layout, read by the real converter and the dataset config."""
import json
import os.path as osp

import cv2

from official_fixtures import build_dataset, load_tool

synthetic = load_tool('synthetic_bdd100k.py')
bdd = load_tool('dataset_converters/bdd100k.py')
TRAIN_ID = {'car': 13, 'pedestrian': 11}


def test_converter_merges_the_generated_sets(tmp_path):
    root = str(tmp_path)
    counts = synthetic.write_synthetic_bdd100k(root, num_det=3, num_seg=2, num_both=2, num_val=1, height=36, width=64)
    assert counts == {'100k/train': 5, '10k/train': 4, '100k/val': 1, '10k/val': 1}
    summary = bdd.convert(root)
    assert {
        k: summary['train'][k]
        for k in ('images', 'det', 'seg', 'both', 'unlabeled')
    } == dict(
        images=7, det=5, seg=4, both=2, unlabeled=0)
    assert summary['removed_10k_train_in_100k_val'] == 0
    val = json.load(open(osp.join(root, 'annotations', 'val.json')))['data_list']
    assert sorted(tuple(e['labeled_tasks']) for e in val) == [('det', ), ('seg', )]

    # the boxes, converted, cover the painted object: the last object drawn is all its class in the mask
    train = json.load(open(osp.join(root, 'annotations', 'train.json')))['data_list']
    both = [e for e in train if e['labeled_tasks'] == ['det', 'seg']]
    for entry in both:
        mask = cv2.imread(osp.join(root, entry['seg_map_path']), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (entry['height'], entry['width']) == (36, 64)
        last = entry['instances'][-1]
        x1, y1, x2, y2 = (int(v) for v in last['bbox'])
        assert (mask[y1:y2, x1:x2] == TRAIN_ID[last['label']]).all()

    dataset = build_dataset('bdd100k_multitask.py', 'train_dataloader', root, filter_cfg=None)
    assert len(dataset) == 7
