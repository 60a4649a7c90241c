"""A tiny generated street-scene data set (det + seg), for the tests and ``tools/benchmark.py`` on machines without
real data (the tests import it as ``toy_data``, ``tests/toy_data.py``).

Images follow Cityscapes file naming (``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``),
segmentation maps are single-channel PNGs of Cityscapes trainIds (255 = ignore), and the annotation file is
the :class:`MultiTaskDataset` format (``annotations/<split>.json``).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

DET_CLASSES = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle')
SEG_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation',
               'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle')
ROAD, SKY, PERSON, CAR = 0, 10, 11, 13  # trainIds


def make_image(rng: np.random.Generator,
               h: int,
               w: int,
               boxes: Sequence[Sequence[float]],
               persons: Sequence[Sequence[float]] = (),
               crowd: Optional[Sequence[float]] = None):
    """Sky over road with one dark-red rectangle ('car') per box, a car group (``crowd``) behind them and persons
    (``persons``) in front of them.

    Returns:
        tuple: BGR image (h, w, 3) uint8 and its trainId map (h, w) uint8.
    """
    img = np.zeros((h, w, 3), np.uint8)
    seg = np.full((h, w), ROAD, np.uint8)
    img[:] = (90, 90, 90)
    img[:h // 3] = (200, 160, 120)
    seg[:h // 3] = SKY
    img = np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    layers = ([(crowd, (40, 40, 120), CAR)] if crowd is not None else []) + [(b, (30, 30, 160), CAR) for b in boxes]
    for (x1, y1, x2, y2), color, train_id in layers + [(b, (60, 140, 200), PERSON) for b in persons]:
        img[int(y1):int(y2), int(x1):int(x2)] = color
        seg[int(y1):int(y2), int(x1):int(x2)] = train_id
    return img, seg


def write_dataset(root: str,
                  labeled: Sequence[Sequence[str]],
                  split: str = 'train',
                  h: int = 64,
                  w: int = 128,
                  seed: int = 0,
                  extra_instances: Optional[Dict[int, List[dict]]] = None,
                  crowd_and_nested: bool = True) -> dict:
    """Write ``len(labeled)`` images with their labels and ``annotations/<split>.json`` under ``root``.

    Args:
        root (str): Data root.
        labeled (Sequence[Sequence[str]]): Per image, the tasks it is labeled for (``('det', 'seg')``, ``()``).
        split (str): Split name (file names and annotation file).
        h, w (int): Image size in pixels.
        seed (int): Seed of the generator.
        extra_instances (dict, optional): Image index -> raw instance dicts appended to its annotation
            (tests use it to write bad input).
        crowd_and_nested (bool): Odd images get a person box inside a car box, every third image a car-group
            ignore box (``ignore_flag=1``) enclosing a labeled car. Defaults to True.

    Returns:
        dict: The annotation file's content.
    """
    rng = np.random.default_rng(seed)
    data_list = []
    for i, tasks in enumerate(labeled):
        city = 'toycity'
        stem = f'{city}_{i:06d}_000019'
        img_rel = f'leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png'
        seg_rel = f'gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png'
        boxes = []
        for _ in range(int(rng.integers(1, 3))):
            x1 = float(rng.integers(0, w - 40))
            y1 = float(rng.integers(h // 3, h - 20))
            boxes.append([x1, y1, min(x1 + float(rng.integers(16, 40)), w), min(y1 + float(rng.integers(10, 20)), h)])
        # what real data sends through the box assigner: on odd images a small person in front of the first car
        # (a box inside a box, the car partly hidden), on every third image a car group behind the cars (an
        # ignore region holding a labeled car, as the Cityscapes converter writes crowd groups)
        persons, crowd = [], None
        if crowd_and_nested and i % 2 == 1:
            x1, y1, x2, y2 = boxes[0]
            persons.append([x1 + 2, y1 + 2, min(x1 + 8, x2), y2])
        if crowd_and_nested and i % 3 == 2:
            x1, y1, x2, y2 = boxes[0]
            crowd = [max(x1 - 12, 0), max(y1 - 6, h // 3), min(x2 + 24, w), y2]
        img, seg = make_image(rng, h, w, boxes, persons, crowd)
        for rel, arr in ((img_rel, img), (seg_rel, seg)):
            os.makedirs(osp.dirname(osp.join(root, rel)), exist_ok=True)
            cv2.imwrite(osp.join(root, rel), arr)
        entry = dict(img_path=img_rel, height=h, width=w, labeled_tasks=list(tasks))
        if 'seg' in tasks:
            entry['seg_map_path'] = seg_rel
        if 'det' in tasks:
            entry['instances'] = ([dict(bbox=b, label='car', ignore_flag=0)
                                   for b in boxes] + [dict(bbox=b, label='person', ignore_flag=0) for b in persons] +
                                  ([dict(bbox=crowd, label='car', ignore_flag=1)] if crowd else []))
        if extra_instances and i in extra_instances:
            entry.setdefault('instances', []).extend(extra_instances[i])
        data_list.append(entry)
    ann = dict(metainfo=dict(classes=list(DET_CLASSES), seg_classes=list(SEG_CLASSES)), data_list=data_list)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
        json.dump(ann, f)
    return ann
