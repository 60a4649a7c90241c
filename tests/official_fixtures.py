"""Tiny trees in the *official* on-disk formats of Cityscapes and BDD100K, for the converter tests.

Cityscapes (``write_cityscapes``): ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` (RGB),
``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`` (uint8 label ids), ``_gtFine_instanceIds.png`` (16-bit:
``id * 1000 + k`` for instance ``k``, the bare label id elsewhere, including crowd groups),
``_gtFine_color.png`` and ``_gtFine_polygons.json``; optional ``train_extra`` and ``leftImg8bit_sequence``.

BDD100K (``write_bdd100k``): ``images/{100k,10k}/{train,val}/<name>.jpg``, ``labels/det_20/det_{train,val}.json``
(Scalabel: a list of frames ``{"name", "attributes", "timestamp", "labels": [{"id", "category",
"attributes", "box2d": {"x1", "y1", "x2", "y2"}}]}``) and ``labels/sem_seg/masks/{train,val}/<name>.png``
(uint8 trainIds, 255 = ignore).

The expected conversion results are written out by hand in the tests, not computed here.
"""
import importlib.util
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATASET_CONFIGS = osp.join(REPO, 'configs', '_base_', 'datasets')


def load_tool(rel_path: str):
    """Import a script of ``tools/`` (not a package) as a module, e.g. ``'dataset_converters/cityscapes.py'``."""
    path = osp.join(REPO, 'tools', rel_path)
    name = 'tool_' + rel_path.replace('/', '_')[:-3]
    if name in sys.modules:  # one module object per tool: its functions must pickle by name
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its functions must pickle (--nproc runs them in worker processes)
    spec.loader.exec_module(module)
    return module


def build_dataset(config: str, key: str, data_root: str, **overrides):
    """Build ``cfg[key].dataset`` of a dataset config with every ``data_root`` pointed at ``data_root``."""
    from mmdet.registry import DATASETS
    from mmengine.config import Config

    import mtssl_mm  # noqa: F401  (registers MultiTaskDataset and its transforms)
    cfg = Config.fromfile(osp.join(DATASET_CONFIGS, config))
    ds_cfg = cfg[key].dataset
    for part in ds_cfg.get('datasets', [ds_cfg]):
        part.data_root = data_root
    ds_cfg.update(overrides)
    return DATASETS.build(ds_cfg)


# ----------------------------------------------------------------------------------------------- Cityscapes
CS_H, CS_W = 40, 80
# label ids of cityscapesscripts' table (the fixture has to name them; the converter must not)
SKY, ROAD, BUILDING, POLE, PARKING = 23, 7, 11, 17, 9
PERSON, RIDER, CAR, TRUCK, BUS, CARAVAN, TRAIN, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 29, 31, 32, 33
COLORS = {
    SKY: (70, 130, 180),
    ROAD: (128, 64, 128),
    BUILDING: (70, 70, 70),
    POLE: (153, 153, 153),
    PARKING: (250, 170, 160),
    PERSON: (220, 20, 60),
    RIDER: (255, 0, 0),
    CAR: (0, 0, 142),
    TRUCK: (0, 0, 70),
    BUS: (0, 60, 100),
    CARAVAN: (0, 0, 90),
    TRAIN: (0, 80, 100),
    MOTORCYCLE: (0, 0, 230),
    BICYCLE: (119, 11, 32)
}
NAMES = {
    PERSON: 'person',
    RIDER: 'rider',
    CAR: 'car',
    TRUCK: 'truck',
    BUS: 'bus',
    CARAVAN: 'caravan',
    TRAIN: 'train',
    MOTORCYCLE: 'motorcycle',
    BICYCLE: 'bicycle',
    POLE: 'pole'
}

# (value written to instanceIds, label id, [(y0, y1, x0, x1) rectangles, inclusive]) painted in this order
# (later paints occlude earlier ones). Values >= 1000 are instances, values < 1000 crowd groups.
AACHEN_0_OBJECTS = [
    (CAR * 1000 + 1, CAR, [(20, 27, 10, 17), (22, 29, 23, 30)]),  # one car, seen in two pieces
    (POLE, POLE, [(15, 35, 18, 22)]),  # the occluder between the two pieces (stuff)
    (CAR * 1000 + 2, CAR, [(12, 15, 40, 49)]),
    (PERSON * 1000 + 0, PERSON, [(5, 16, 52, 55)]),  # instance number 0 is a valid instance
    (BICYCLE * 1000 + 0, BICYCLE, [(33, 39, 33, 41)]),
    (RIDER * 1000 + 0, RIDER, [(30, 37, 35, 38)]),  # rider on the bicycle, occluding part of it
    (PERSON, PERSON, [(25, 29, 60, 64), (35, 37, 70, 74)]),  # a person crowd group in two places
    (CAR, CAR, [(2, 4, 2, 6)]),  # a car crowd group
    (CARAVAN * 1000 + 0, CARAVAN, [(30, 35, 0, 5)]),  # instance of a class ignored in evaluation: no box
    (PARKING, PARKING, [(36, 39, 45, 55)]),
]
BREMEN_OBJECTS = [(TRUCK * 1000 + 0, TRUCK, [(10, 19, 10, 29)])]
FRANKFURT_OBJECTS = [
    (BUS * 1000 + 0, BUS, [(10, 19, 5, 24)]),
    (TRAIN * 1000 + 0, TRAIN, [(20, 29, 40, 69)]),
    (MOTORCYCLE * 1000 + 3, MOTORCYCLE, [(30, 33, 0, 3)]),
]
CS_TRAIN = {
    'aachen/aachen_000000_000019': AACHEN_0_OBJECTS,
    'aachen/aachen_000001_000019': [],  # no object at all: a valid all-negative image
    'bremen/bremen_000000_000019': BREMEN_OBJECTS
}
CS_VAL = {'frankfurt/frankfurt_000000_000294': FRANKFURT_OBJECTS}
CS_TRAIN_EXTRA = ['augsburg/augsburg_000000_000000', 'augsburg/augsburg_000000_000001']
# sequence frames around the train images: 000019 of each is the train image itself
CS_SEQUENCE = {
    'train': [
        'aachen/aachen_000000_000018', 'aachen/aachen_000000_000019', 'aachen/aachen_000000_000020',
        'aachen/aachen_000001_000019'
    ],
    'val': ['frankfurt/frankfurt_000000_000293']
}


def _rgb_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def paint_cityscapes(objects: Sequence[Tuple[int, int, List[Tuple[int, int, int, int]]]],
                     h: int = CS_H,
                     w: int = CS_W) -> Tuple[np.ndarray, np.ndarray]:
    """Label ids and instance ids of one image: sky on top, road below, a building, then ``objects``.

    Returns:
        tuple: ``labelIds`` (h, w) uint8 and ``instanceIds`` (h, w) uint16.
    """
    label = np.full((h, w), ROAD, np.uint8)
    label[:10] = SKY
    label[:10, 60:] = BUILDING
    inst = label.astype(np.uint16)
    for value, label_id, rects in objects:
        for y0, y1, x0, x1 in rects:
            label[y0:y1 + 1, x0:x1 + 1] = label_id
            inst[y0:y1 + 1, x0:x1 + 1] = value
    return label, inst


def _polygons(objects, h: int, w: int) -> dict:
    objs = [
        dict(label='road', polygon=[[0, 10], [w - 1, 10], [w - 1, h - 1], [0, h - 1]]),
        dict(label='sky', polygon=[[0, 0], [w - 1, 0], [w - 1, 9], [0, 9]])
    ]
    for value, label_id, rects in objects:
        name = NAMES.get(label_id, 'parking')
        if value < 1000 and label_id in (PERSON, CAR):
            name += 'group'
        for y0, y1, x0, x1 in rects:
            objs.append(dict(label=name, polygon=[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    return dict(imgHeight=h, imgWidth=w, objects=objs)


def _write(path: str, arr: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, arr), path


def write_cityscapes(root: str,
                     train_extra: Optional[str] = 'leftImg8bit',
                     sequence: bool = True,
                     seed: int = 0) -> None:
    """Write the Cityscapes tree under ``root``.

    Args:
        root (str): Dataset root.
        train_extra (str, optional): ``'leftImg8bit'`` writes ``leftImg8bit/train_extra/`` (the official zip
            unpacked in ``root``), ``'trainextra'`` writes ``leftImg8bit_trainextra/leftImg8bit/train_extra/``,
            None writes none.
        sequence (bool): Write ``leftImg8bit_sequence/{train,val}``.
        seed (int): Seed of the image noise.
    """
    rng = np.random.default_rng(seed)
    for split, items in (('train', CS_TRAIN), ('val', CS_VAL)):
        for key, objects in items.items():
            city, stem = key.split('/')
            _write(osp.join(root, 'leftImg8bit', split, city, f'{stem}_leftImg8bit.png'), _rgb_image(rng, CS_H, CS_W))
            label, inst = paint_cityscapes(objects)
            gt = osp.join(root, 'gtFine', split, city, stem)
            _write(f'{gt}_gtFine_labelIds.png', label)
            _write(f'{gt}_gtFine_instanceIds.png', inst)  # uint16 -> 16-bit PNG, as the official files
            color = np.zeros((CS_H, CS_W, 3), np.uint8)
            for label_id, rgb in COLORS.items():
                color[label == label_id] = rgb[::-1]
            _write(f'{gt}_gtFine_color.png', color)
            with open(f'{gt}_gtFine_polygons.json', 'w') as f:
                json.dump(_polygons(objects, CS_H, CS_W), f)
    if train_extra:
        base = {
            'leftImg8bit': osp.join(root, 'leftImg8bit', 'train_extra'),
            'trainextra': osp.join(root, 'leftImg8bit_trainextra', 'leftImg8bit', 'train_extra')
        }[train_extra]
        for key in CS_TRAIN_EXTRA:
            _write(osp.join(base, f'{key}_leftImg8bit.png'), _rgb_image(rng, CS_H, CS_W))
    if sequence:
        for split, keys in CS_SEQUENCE.items():
            for key in keys:
                _write(
                    osp.join(root, 'leftImg8bit_sequence', split, f'{key}_leftImg8bit.png'),
                    _rgb_image(rng, CS_H, CS_W))


# ----------------------------------------------------------------------------------------------- BDD100K
BDD_H, BDD_W = 32, 64
A, B, C, D = 'a0000001-00000001', 'b0000002-00000002', 'c0000003-00000003', 'd0000004-00000004'
E, F = 'e0000005-00000005', 'f0000006-00000006'
V1, V2, S1 = '90000007-00000007', '90000008-00000008', '80000009-00000009'
BDD_IMAGES = {
    ('100k', 'train'): [A, B, C, D],
    ('100k', 'val'): [V1, V2],
    ('10k', 'train'): [B, E, F, V1],  # B is also in 100k/train; V1 is in 100k/val (removed from training)
    ('10k', 'val'): [S1],
}
BDD_MASKS = {'train': [B, E, V1], 'val': [S1]}  # F in 10k/train has no mask: unlabeled


def _box(x1, y1, x2, y2):
    return dict(x1=x1, y1=y1, x2=x2, y2=y2)


def _label(i, category, box=None, crowd=None, **extra):
    attributes = dict(occluded=False, truncated=False, trafficLightColor='NA')
    if crowd is not None:
        attributes['crowd'] = crowd
    lab = dict(id=str(i), category=category, attributes=attributes, manualShape=True, manualAttributes=True)
    if box is not None:
        lab['box2d'] = _box(*box)
    lab.update(extra)
    return lab


LANE = dict(vertices=[[0.0, 30.0], [20.0, 20.0]], types='LL', closed=False)


def bdd_det_frames() -> Dict[str, List[dict]]:
    """``det_train`` / ``det_val`` frames: current and legacy category names, ignore classes, a crowd box,
    box-less labels (lane, drivable area), a frame without labels; an image with no frame at all (D)."""
    frame_attrs = dict(weather='clear', scene='city street', timeofday='daytime')
    train = [
        dict(
            name=f'{A}.jpg',
            attributes=frame_attrs,
            timestamp=10000,
            labels=[
                _label(0, 'car', (2.5, 3.0, 20.25, 15.0)),
                _label(1, 'person', (30, 4, 35, 20)),  # legacy name of pedestrian
                _label(2, 'bike', (40, 10, 47, 18)),  # legacy name of bicycle
                _label(3, 'motor', (50, 10, 57, 18)),  # legacy name of motorcycle
                _label(4, 'other person', (1, 20, 4, 28)),  # ignore -> pedestrian
                _label(5, 'trailer', (10, 20, 30, 30)),  # ignore -> truck
                _label(6, 'car', (40, 20, 60, 30), crowd=True),  # crowd -> ignore
                _label(7, 'lane', poly2d=[LANE]),  # no box2d: skipped, counted
                _label(8, 'drivable area', poly2d=[dict(LANE, closed=True)]),  # no box2d: skipped, counted
                _label(9, 'other vehicle', (5, 5, 9, 9)),  # ignore -> car
            ]),
        dict(
            name=f'{B}.jpg',
            attributes=frame_attrs,
            timestamp=10000,
            labels=[
                _label(0, 'traffic light', (1, 1, 3, 6)),
                _label(1, 'traffic sign', (10, 1, 14, 5)),
                _label(2, 'train', (20, 2, 60, 20), crowd=False),
            ]),
        dict(name=f'{C}.jpg', attributes=frame_attrs, timestamp=10000),  # a frame without labels
    ]
    val = [
        dict(name=f'{V1}.jpg', attributes=frame_attrs, timestamp=10000, labels=[_label(0, 'bus', (0, 0, 10, 10))]),
        dict(
            name=f'{V2}.jpg',
            attributes=frame_attrs,
            timestamp=10000,
            labels=[
                _label(0, 'rider', (3, 4, 8, 12)),
                _label(1, 'truck', (20, 5, 40, 25)),
                _label(2, 'pedestrian', (50, 1, 55, 9)),
                _label(3, 'motorcycle', (44, 15, 50, 22)),
                _label(4, 'bicycle', (30, 20, 36, 30))
            ]),
    ]
    return dict(train=train, val=val)


def bdd_mask(name: str, h: int = BDD_H, w: int = BDD_W) -> np.ndarray:
    """The trainId mask written for image ``name``: road (0) below, sky (10) on top, a car (13), 255 left."""
    mask = np.zeros((h, w), np.uint8)
    mask[:h // 3] = 10
    mask[h // 2:h // 2 + 4, 5:15] = 13
    mask[:, :2] = 255
    mask[-1, -1] = 1 + sum(map(ord, name)) % 18  # a name-dependent pixel, to tell masks apart
    return mask


def write_bdd100k(root: str, seed: int = 0) -> None:
    """Write the BDD100K tree under ``root`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    for (subset, split), names in BDD_IMAGES.items():
        for name in names:
            _write(osp.join(root, 'images', subset, split, f'{name}.jpg'), _rgb_image(rng, BDD_H, BDD_W))
    for split, names in BDD_MASKS.items():
        for name in names:
            _write(osp.join(root, 'labels', 'sem_seg', 'masks', split, f'{name}.png'), bdd_mask(name))
    det_dir = osp.join(root, 'labels', 'det_20')
    os.makedirs(det_dir, exist_ok=True)
    for split, frames in bdd_det_frames().items():
        with open(osp.join(det_dir, f'det_{split}.json'), 'w') as f:
            json.dump(frames, f)
