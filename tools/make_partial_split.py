"""Write a seeded low-data split (section 4.1, scenarios a-e) of a fully labeled annotation file.

Usage::

    python tools/make_partial_split.py data/cityscapes/annotations/train.json --scenario c \\
        --n-det 93 --n-seg 93 --seed 0 -o data/cityscapes/splits/c_93_seed0.json

Scenarios (Figure 1 of the paper; ``N`` from 1/32 = 93 to 1/2 = 1,488 of Cityscapes' 2,975 train images):

* ``a``: every image labeled for detection, ``--n-seg`` random images for segmentation (``--n-det`` is all).
* ``b``: ``N`` random images labeled for both tasks (full overlap); ``--n-det`` = ``--n-seg`` = ``N``.
* ``c``: ``N`` random images per task, drawn independently (random overlap); ``--n-det`` = ``--n-seg``.
* ``d``: ``--n-det`` random images for detection; ``--n-seg`` of *those* for segmentation (``n_seg <= n_det``).
* ``e``: ``--n-det`` and ``--n-seg`` random images drawn independently (random overlap).

``N`` is a count or a fraction ``1/k`` of the images labeled for that task (``1/32`` of 2,975 is 93). For
``b`` and ``c`` giving one of ``--n-det`` / ``--n-seg`` is enough. Draws use ``numpy.random.default_rng(seed)``
over the images sorted by path, so a seed gives the same split whatever the order of the annotation file.
The tool prints the sizes and the overlap (the overlap sizes of Tables 2 and 3 for c and e).

Output (read by ``MultiTaskDataset(split_file=...)``; images not listed become unlabeled for that task)::

    {"labeled": {"det": [img_path, ...], "seg": [img_path, ...]},
     "meta": {"scenario", "n_det", "n_seg", "overlap", "seed", "ann_file", "num_images"}}

``img_path`` is written exactly as in the annotation file; ``meta`` is for people, the dataset ignores it.
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from mtssl_mm.utils.json_io import load_json

SCENARIOS = ('a', 'b', 'c', 'd', 'e')


def parse_n(value: Optional[str], pool_size: int, flag: str) -> Optional[int]:
    """A count (``'93'``) or a fraction of ``pool_size`` (``'1/32'`` -> round half up); None stays None."""
    if value is None:
        return None
    value = str(value).strip()
    try:
        if '/' in value:
            num, den = (float(v) for v in value.split('/'))
            n = int(pool_size * num / den + 0.5)
        else:
            n = int(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f'{flag}: expected a count (93) or a fraction (1/32), got {value!r}')
    return n


def check_n(n: Optional[int], available: int, flag: str, what: str) -> int:
    if n is None:
        raise ValueError(f'{flag} is required for this scenario')
    if n <= 0:
        raise ValueError(f'{flag} must be > 0, got {n}')
    if n > available:
        raise ValueError(f'{flag}={n} but only {available} images are {what}')
    return n


def draw(rng: np.random.Generator, pool: Sequence[str], n: int) -> List[str]:
    """``n`` distinct items of the sorted ``pool``, sorted."""
    pool = sorted(pool)
    return sorted(pool[i] for i in rng.permutation(len(pool))[:n])


def make_split(data_list: Sequence[dict], scenario: str, n_det: Optional[str] = None, n_seg: Optional[str] = None,
               seed: int = 0) -> Dict[str, List[str]]:
    """The labeled images of each task for ``scenario``.

    Args:
        data_list (Sequence[dict]): Entries of the annotation file (``img_path``, ``labeled_tasks``).
        scenario (str): One of ``a``-``e`` (module docstring).
        n_det, n_seg (str | int, optional): Sizes, counts or ``1/k`` fractions.
        seed (int): Seed of the draws.

    Returns:
        dict: ``{"det": [img_path, ...], "seg": [img_path, ...]}``, each sorted.

    Raises:
        ValueError: An unknown scenario, a missing, non-positive or too large size, inconsistent sizes.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f'unknown scenario {scenario!r}; choose one of {SCENARIOS}')
    paths = [d['img_path'] for d in data_list]
    if len(set(paths)) != len(paths):
        raise ValueError('the annotation file lists an img_path twice')
    det_pool = sorted(d['img_path'] for d in data_list if 'det' in d['labeled_tasks'])
    seg_pool = sorted(d['img_path'] for d in data_list if 'seg' in d['labeled_tasks'])
    both_pool = sorted(set(det_pool) & set(seg_pool))
    nd, ns = parse_n(n_det, len(det_pool), '--n-det'), parse_n(n_seg, len(seg_pool), '--n-seg')
    rng = np.random.default_rng(seed)
    if scenario == 'a':
        if nd is not None and nd != len(det_pool):
            raise ValueError(f'scenario a labels every image for detection ({len(det_pool)}); '
                             f'drop --n-det (got {nd})')
        ns = check_n(ns, len(seg_pool), '--n-seg', 'labeled for seg')
        return dict(det=det_pool, seg=draw(rng, seg_pool, ns))
    if scenario in ('b', 'c'):
        if nd is not None and ns is not None and nd != ns:
            raise ValueError(f'scenario {scenario} has the same size for both tasks; got --n-det {nd} and '
                             f'--n-seg {ns}')
        n = nd if nd is not None else ns
        if n is None:
            raise ValueError(f'scenario {scenario}: give --n-det or --n-seg')
        if scenario == 'b':
            n = check_n(n, len(both_pool), '--n-det/--n-seg', 'labeled for both tasks')
            chosen = draw(rng, both_pool, n)
            return dict(det=chosen, seg=list(chosen))
        det = draw(rng, det_pool, check_n(n, len(det_pool), '--n-det', 'labeled for det'))
        return dict(det=det, seg=draw(rng, seg_pool, check_n(n, len(seg_pool), '--n-seg', 'labeled for seg')))
    nd = check_n(nd, len(det_pool), '--n-det', 'labeled for det')
    if scenario == 'd':
        ns = check_n(ns, len(seg_pool), '--n-seg', 'labeled for seg')
        if ns > nd:
            raise ValueError(f'scenario d: the seg images are a subset of the det images, so --n-seg ({ns}) '
                             f'must be <= --n-det ({nd})')
        det = draw(rng, det_pool, nd)
        seg_in_det = sorted(set(det) & set(seg_pool))
        return dict(det=det, seg=draw(rng, seg_in_det, check_n(ns, len(seg_in_det), '--n-seg',
                                                                  'labeled for seg among the drawn det images')))
    ns = check_n(ns, len(seg_pool), '--n-seg', 'labeled for seg')
    det = draw(rng, det_pool, nd)
    return dict(det=det, seg=draw(rng, seg_pool, ns))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a seeded low-data split file (scenarios a-e of section 4.1) for MultiTaskDataset\'s '
        'split_file option, from a fully labeled annotation file.')
    parser.add_argument('ann_file', help='annotation file written by tools/dataset_converters/* (e.g. train.json)')
    parser.add_argument('--scenario', required=True, choices=SCENARIOS,
                        help='a: all det, N seg; b: N both (full overlap); c: N each, random overlap; '
                        'd: N_seg within N_det; e: N_det and N_seg, random overlap')
    parser.add_argument('--n-det', default=None, help='images labeled for detection: a count or 1/k')
    parser.add_argument('--n-seg', default=None, help='images labeled for segmentation: a count or 1/k')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random draws (default: 0)')
    parser.add_argument('-o', '--out', required=True, help='split file to write (JSON)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(args.ann_file):
        raise FileNotFoundError(f'annotation file {args.ann_file} does not exist')
    ann = load_json(args.ann_file)  # a truncated file: ValueError naming the file, line and column
    if not isinstance(ann, dict) or not isinstance(ann.get('data_list'), list):
        raise ValueError(f'{args.ann_file}: expected {{"metainfo": ..., "data_list": [...]}}')
    for d in ann['data_list']:
        if 'img_path' not in d or 'labeled_tasks' not in d:
            raise ValueError(f'{args.ann_file}: an entry has no img_path or labeled_tasks: {str(d)[:200]}')
    try:
        labeled = make_split(ann['data_list'], args.scenario, args.n_det, args.n_seg, args.seed)
    except ValueError as e:
        raise ValueError(f'{args.ann_file}: {e}') from None
    overlap = len(set(labeled['det']) & set(labeled['seg']))
    meta = dict(scenario=args.scenario, n_det=len(labeled['det']), n_seg=len(labeled['seg']), overlap=overlap,
                seed=args.seed, ann_file=args.ann_file, num_images=len(ann['data_list']))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(labeled=labeled, meta=meta), f, indent=1)
    print(f'scenario {args.scenario} (seed {args.seed}) of {len(ann["data_list"])} images: '
          f'det {meta["n_det"]}, seg {meta["n_seg"]}, overlap {overlap} -> {args.out}')
    return dict(labeled=labeled, meta=meta)


if __name__ == '__main__':
    main()
