"""A small seeded data set in the *official* BDD100K on-disk layout, for runs on machines without the real one.

``tools/gpu_check.sh`` trains ``configs/bdd100k/*.py`` for a few iterations on it, after the real converter
(``tools/dataset_converters/bdd100k.py``) has made the annotation files. Written under ``ROOT``::

    images/100k/{train,val}/<name>.jpg            detection images (the labeled-for-both ones are in 10k too)
    images/10k/{train,val}/<name>.jpg             segmentation images
    labels/det_20/det_{train,val}.json            Scalabel frames: name, attributes (weather, scene, timeofday),
                                                  labels [{id, category, attributes, box2d {x1, y1, x2, y2}}]
                                                  (box2d includes its x2/y2 pixel, as BDD100K's)
    labels/sem_seg/masks/{train,val}/<name>.png   uint8 Cityscapes trainIds, 255 = ignore

Scenes: sky over road, a sidewalk strip, cars and pedestrians as rectangles (in the image, the mask and the
boxes alike), sensor noise. Train: ``num_det`` images labeled for detection only, ``num_seg`` for segmentation
only, ``num_both`` for both (the explicit sampler's labeled pool); val: ``num_val`` of each task.

Usage::

    python tools/synthetic_bdd100k.py data/synthetic_bdd100k [--size 1280x720] [--seed 0]
    python tools/dataset_converters/bdd100k.py data/synthetic_bdd100k
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

ROAD, SIDEWALK, SKY, PERSON, CAR = 0, 1, 10, 11, 13  # Cityscapes trainIds (BDD100K's sem_seg uses them)
SKY_BGR, ROAD_BGR, SIDEWALK_BGR = (200, 160, 120), (90, 90, 90), (150, 140, 140)
OBJECTS = dict(car=(CAR, (30, 30, 160)), pedestrian=(PERSON, (60, 20, 220)))
ATTRIBUTES = dict(weather='clear', scene='city street', timeofday='daytime')


def scene(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """One image: BGR uint8 (H, W, 3), its trainId mask (H, W) and its Scalabel labels."""
    img = np.empty((height, width, 3), np.uint8)
    mask = np.full((height, width), ROAD, np.uint8)
    horizon, kerb = height * 2 // 5, height * 3 // 5
    img[:] = ROAD_BGR
    img[:horizon], mask[:horizon] = SKY_BGR, SKY
    img[horizon:kerb, :width // 5], mask[horizon:kerb, :width // 5] = SIDEWALK_BGR, SIDEWALK
    labels = []
    for i in range(int(rng.integers(2, 6))):
        category = 'car' if rng.random() < 0.6 else 'pedestrian'
        h = int(rng.integers(height // 12, height // 4))
        w = int(h * (1.6 if category == 'car' else 0.4))
        x1 = int(rng.integers(0, width - w))
        y1 = int(rng.integers(horizon - h // 2, height - h))
        train_id, bgr = OBJECTS[category]
        img[y1:y1 + h, x1:x1 + w], mask[y1:y1 + h, x1:x1 + w] = bgr, train_id
        labels.append(
            dict(
                id=str(i),
                category=category,
                attributes=dict(occluded=False, truncated=False),
                box2d=dict(x1=float(x1), y1=float(y1), x2=float(x1 + w - 1), y2=float(y1 + h - 1))))
    noise = rng.integers(-12, 13, img.shape)
    img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return img, mask, labels


def write(path: str, arr: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, arr):
        raise OSError(f'cannot write {path}')


def write_synthetic_bdd100k(root: str,
                            num_det: int = 4,
                            num_seg: int = 2,
                            num_both: int = 4,
                            num_val: int = 2,
                            height: int = 720,
                            width: int = 1280,
                            seed: int = 0) -> Dict[str, int]:
    """Write the tree under ``root`` (see the module docstring).

    Args:
        root (str): Dataset root.
        num_det (int): Train images labeled for detection only (``images/100k/train``).
        num_seg (int): Train images labeled for segmentation only (``images/10k/train``).
        num_both (int): Train images labeled for both (in both folders, as BDD100K's overlap).
        num_val (int): Val images of each task.
        height (int): Image height in pixels (BDD100K: 720).
        width (int): Image width in pixels (BDD100K: 1280).
        seed (int): Seed of the generator.

    Returns:
        dict: Number of images written per ``<subset>/<split>`` folder.
    """
    rng = np.random.default_rng(seed)
    kinds = [('train', 'det')] * num_det + [('train', 'seg')] * num_seg + [('train', 'both')] * num_both + \
        [('val', 'det')] * num_val + [('val', 'seg')] * num_val
    frames = dict(train=[], val=[])
    counts: Dict[str, int] = {}
    for i, (split, kind) in enumerate(kinds):
        name = f'{seed:08x}-{i:08x}'
        img, mask, labels = scene(rng, height, width)
        subsets = dict(det=('100k', ), seg=('10k', ), both=('100k', '10k'))[kind]
        for subset in subsets:
            write(osp.join(root, 'images', subset, split, f'{name}.jpg'), img)
            counts[f'{subset}/{split}'] = counts.get(f'{subset}/{split}', 0) + 1
        if '100k' in subsets:
            frames[split].append(dict(name=f'{name}.jpg', attributes=ATTRIBUTES, timestamp=10000, labels=labels))
        if '10k' in subsets:
            write(osp.join(root, 'labels', 'sem_seg', 'masks', split, f'{name}.png'), mask)
    os.makedirs(osp.join(root, 'labels', 'det_20'), exist_ok=True)
    for split, split_frames in frames.items():
        with open(osp.join(root, 'labels', 'det_20', f'det_{split}.json'), 'w') as f:
            json.dump(split_frames, f)
    return counts


def main(argv=None) -> Dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder (the BDD100K root)')
    parser.add_argument('--size', default='1280x720', help='WIDTHxHEIGHT of every image (BDD100K: 1280x720)')
    parser.add_argument('--num-det', type=int, default=4)
    parser.add_argument('--num-seg', type=int, default=2)
    parser.add_argument('--num-both', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    def fail(message):  # bad command-line input: one line and exit status 2, no traceback
        parser.exit(2, f'{parser.prog}: error: {message}\n')

    try:
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        fail(f'--size: expected WIDTHxHEIGHT (e.g. 1280x720), got {args.size!r}')
    widest_car = int((height // 4 - 1) * 1.6)  # scene(): the objects must fit the image
    if height < 12 or width <= widest_car:
        fail(f'--size {args.size}: too small for the scene: the height must be at least 12 and the width more than '
             f'{max(widest_car, 1)} (the widest car)')
    for flag in ('num_det', 'num_seg', 'num_both', 'num_val'):
        if getattr(args, flag) < 0:
            fail(f'--{flag.replace("_", "-")} must be >= 0, got {getattr(args, flag)}')
    counts = write_synthetic_bdd100k(args.root, args.num_det, args.num_seg, args.num_both, args.num_val, height, width,
                                     args.seed)
    print(f'[synthetic_bdd100k] {args.root}: ' + ', '.join(f'{k} {v}' for k, v in sorted(counts.items())))
    return counts


if __name__ == '__main__':
    main()
