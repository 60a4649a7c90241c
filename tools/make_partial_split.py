"""Write a seeded low-data split of a labeled annotation file: per-task counts for any tasks, or the named
scenarios a-e of section 4.1 (detection + segmentation).

Usage::

    # any tasks: N images per task, each drawn independently (random overlap)
    python tools/make_partial_split.py data/bdd100k/annotations/train.json --n det=1/8 --n attr=500 \\
        --seed 0 -o data/bdd100k/splits/det8_attr500_seed0.json
    # the paper's scenarios (presets for det + seg)
    python tools/make_partial_split.py data/cityscapes/annotations/train.json --scenario c \\
        --n-det 93 --n-seg 93 --seed 0 -o data/cityscapes/splits/c_93_seed0.json

``--n TASK=N`` (repeatable) draws ``N`` of the images labeled for ``TASK``, task by task in the order given. A
task of the annotation file that gets no count (neither ``--n`` nor a scenario) keeps all its labeled images:
a split never takes labels away silently (the tool prints what each task keeps). ``--n`` may name tasks beside
a scenario's det and seg.

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

    {"labeled": {task: [img_path, ...], ...},
     "meta": {"scenario" (or null), "counts": {task: n}, "drawn": [tasks], "overlap", "seed", "ann_file",
              "num_images"}}  (+ "n_det", "n_seg" with a scenario)

``overlap`` is the number of images labeled for every drawn task.

``img_path`` is written exactly as in the annotation file; ``meta`` is for people, the dataset ignores it.

Bad input (a missing, truncated or malformed annotation file, sizes that do not fit it) stops the command with one
line ``make_partial_split.py: error: <file>[:line:col]: <what>`` and exit status 2, no traceback, nothing written.
"""
import argparse
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

SCENARIOS = ('a', 'b', 'c', 'd', 'e')


class SplitInputError(ValueError):
    """Bad input: the annotation file or the sizes asked for (the message names the file or the option)."""


class AnnFileNotFoundError(SplitInputError, FileNotFoundError):
    """The annotation file does not exist."""


def load_json(path: str):
    """The parsed content of the JSON file ``path``.

    Raises:
        AnnFileNotFoundError: no such file.
        SplitInputError: ``'{path}:{line}:{col}: invalid JSON: <reason>'`` for a truncated or malformed file, or
            ``'{path}: not UTF-8 text (...)'``.
    """
    if not osp.isfile(path):
        raise AnnFileNotFoundError(f'{path}: annotation file does not exist')
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise SplitInputError(f'{path}: not UTF-8 text ({e})') from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SplitInputError(f'{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}') from None


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
        raise SplitInputError(f'{flag}: expected a count (93) or a fraction (1/32), got {value!r}')
    return n


def check_n(n: Optional[int], available: int, flag: str, what: str) -> int:
    if n is None:
        raise SplitInputError(f'{flag} is required for this scenario')
    if n <= 0:
        raise SplitInputError(f'{flag} must be > 0, got {n}')
    if n > available:
        raise SplitInputError(f'{flag}={n} but only {available} images are {what}')
    return n


def draw(rng: np.random.Generator, pool: Sequence[str], n: int) -> List[str]:
    """``n`` distinct items of the sorted ``pool``, sorted."""
    pool = sorted(pool)
    return sorted(pool[i] for i in rng.permutation(len(pool))[:n])


def make_split(data_list: Sequence[dict],
               scenario: str,
               n_det: Optional[str] = None,
               n_seg: Optional[str] = None,
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
        SplitInputError: (a ``ValueError``) An unknown scenario, a missing, non-positive or too large size,
            inconsistent sizes.
    """
    if scenario not in SCENARIOS:
        raise SplitInputError(f'unknown scenario {scenario!r}; choose one of {SCENARIOS}')
    paths = [d['img_path'] for d in data_list]
    if len(set(paths)) != len(paths):
        raise SplitInputError('the annotation file lists an img_path twice')
    det_pool = sorted(d['img_path'] for d in data_list if 'det' in d['labeled_tasks'])
    seg_pool = sorted(d['img_path'] for d in data_list if 'seg' in d['labeled_tasks'])
    both_pool = sorted(set(det_pool) & set(seg_pool))
    nd, ns = parse_n(n_det, len(det_pool), '--n-det'), parse_n(n_seg, len(seg_pool), '--n-seg')
    rng = np.random.default_rng(seed)
    if scenario == 'a':
        if nd is not None and nd != len(det_pool):
            raise SplitInputError(f'scenario a labels every image for detection ({len(det_pool)}); '
                                  f'drop --n-det (got {nd})')
        ns = check_n(ns, len(seg_pool), '--n-seg', 'labeled for seg')
        return dict(det=det_pool, seg=draw(rng, seg_pool, ns))
    if scenario in ('b', 'c'):
        if nd is not None and ns is not None and nd != ns:
            raise SplitInputError(f'scenario {scenario} has the same size for both tasks; got --n-det {nd} and '
                                  f'--n-seg {ns}')
        n = nd if nd is not None else ns
        if n is None:
            raise SplitInputError(f'scenario {scenario}: give --n-det or --n-seg')
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
            raise SplitInputError(f'scenario d: the seg images are a subset of the det images, so --n-seg ({ns}) '
                                  f'must be <= --n-det ({nd})')
        det = draw(rng, det_pool, nd)
        seg_in_det = sorted(set(det) & set(seg_pool))
        return dict(
            det=det,
            seg=draw(rng, seg_in_det,
                     check_n(ns, len(seg_in_det), '--n-seg', 'labeled for seg among the drawn det images')))
    ns = check_n(ns, len(seg_pool), '--n-seg', 'labeled for seg')
    det = draw(rng, det_pool, nd)
    return dict(det=det, seg=draw(rng, seg_pool, ns))


def task_pools(data_list: Sequence[dict]) -> Dict[str, List[str]]:
    """Task -> the sorted paths of the images labeled for it, tasks in order of first appearance."""
    pools: Dict[str, List[str]] = {}
    for d in data_list:
        for task in d['labeled_tasks']:
            pools.setdefault(task, []).append(d['img_path'])
    return {t: sorted(p) for t, p in pools.items()}


def parse_counts(items: Optional[Sequence[str]]) -> Dict[str, str]:
    """``['det=93', 'attr=1/8']`` -> ``{'det': '93', 'attr': '1/8'}`` (a task given twice is an error)."""
    counts: Dict[str, str] = {}
    for item in items or ():
        task, sep, value = str(item).partition('=')
        if not sep or not task or not value:
            raise SplitInputError(f'--n: expected TASK=N (e.g. det=93 or seg=1/32), got {item!r}')
        if task in counts:
            raise SplitInputError(f'--n: task {task!r} given twice')
        counts[task] = value
    return counts


def draw_counts(data_list: Sequence[dict], counts: Dict[str, str], seed: int = 0) -> Dict[str, List[str]]:
    """``counts[t]`` random images of those labeled for each task ``t``, drawn independently in the given order.

    Raises:
        SplitInputError: (a ``ValueError``) A task no image is labeled for, a non-positive or too large size.
    """
    pools = task_pools(data_list)
    rng = np.random.default_rng(seed)
    out = {}
    for task, value in counts.items():
        if task not in pools:
            raise SplitInputError(f'--n {task}=...: no image is labeled for {task!r} (tasks of the file: '
                                  f'{list(pools)})')
        flag = f'--n {task}'
        n = check_n(parse_n(value, len(pools[task]), flag), len(pools[task]), flag, f'labeled for {task}')
        out[task] = draw(rng, pools[task], n)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Write a seeded low-data split file for MultiTaskDataset\'s split_file option, from a labeled '
        'annotation file: per-task counts (--n TASK=N) for any tasks, or the scenarios a-e of section 4.1.')
    parser.add_argument('ann_file', help='annotation file written by tools/dataset_converters/* (e.g. train.json)')
    parser.add_argument(
        '--n',
        action='append',
        metavar='TASK=N',
        dest='counts',
        help='images labeled for TASK: a count or 1/k (repeatable; tasks without one keep all)')
    parser.add_argument(
        '--scenario',
        default=None,
        choices=SCENARIOS,
        help='a: all det, N seg; b: N both (full overlap); c: N each, random overlap; '
        'd: N_seg within N_det; e: N_det and N_seg, random overlap')
    parser.add_argument('--n-det', default=None, help='images labeled for detection: a count or 1/k')
    parser.add_argument('--n-seg', default=None, help='images labeled for segmentation: a count or 1/k')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random draws (default: 0)')
    parser.add_argument('-o', '--out', required=True, help='split file to write (JSON)')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def write_split(args: argparse.Namespace) -> dict:
    """Draw the split the parsed command line asks for, write it to ``args.out`` and print its sizes.

    Returns:
        dict: What was written: ``labeled`` and ``meta``.

    Raises:
        AnnFileNotFoundError: (a ``FileNotFoundError``) no annotation file.
        SplitInputError: (a ``ValueError``) a truncated or malformed annotation file (``'{file}:{line}:{col}:
            invalid JSON: ...'``), entries without ``img_path`` / ``labeled_tasks``, sizes that do not fit it;
            the message starts with the file. Nothing is written then.
    """
    ann = load_json(args.ann_file)
    if not isinstance(ann, dict) or not isinstance(ann.get('data_list'), list):
        raise SplitInputError(f'{args.ann_file}: expected {{"metainfo": ..., "data_list": [...]}}')
    for d in ann['data_list']:
        if not (isinstance(d, dict) and isinstance(d.get('img_path'), str) and isinstance(d.get('labeled_tasks'), list)
                and all(isinstance(t, str) for t in d['labeled_tasks'])):
            raise SplitInputError(f'{args.ann_file}: an entry has no img_path (a string) or labeled_tasks (a list of '
                                  f'task names): {str(d)[:200]}')
    try:
        counts = parse_counts(args.counts)
        if args.scenario is None:
            if not counts:
                raise SplitInputError('give per-task counts (--n TASK=N) or a --scenario')
            if args.n_det is not None or args.n_seg is not None:
                raise SplitInputError('--n-det / --n-seg belong to a --scenario; without one use --n det=N --n seg=N')
            labeled = {}
        else:
            preset = [t for t in counts if t in ('det', 'seg')]
            if preset:
                raise SplitInputError(f'--scenario {args.scenario} sizes det and seg with --n-det / --n-seg, not --n '
                                      f'({preset})')
            labeled = make_split(ann['data_list'], args.scenario, args.n_det, args.n_seg, args.seed)
        labeled.update(draw_counts(ann['data_list'], counts, args.seed))
    except SplitInputError as e:
        raise SplitInputError(f'{args.ann_file}: {e}') from None
    drawn = list(labeled)
    kept = {t: pool for t, pool in task_pools(ann['data_list']).items() if t not in labeled}
    labeled.update(kept)
    overlap = len(set.intersection(*(set(labeled[t]) for t in drawn)))
    meta = dict(
        scenario=args.scenario,
        counts={
            t: len(v)
            for t, v in labeled.items()
        },
        drawn=drawn,
        overlap=overlap,
        seed=args.seed,
        ann_file=args.ann_file,
        num_images=len(ann['data_list']))
    if args.scenario is not None:
        meta.update(n_det=len(labeled['det']), n_seg=len(labeled['seg']))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(labeled=labeled, meta=meta), f, indent=1)
    what = f'scenario {args.scenario}' if args.scenario else 'counts'
    sizes = ', '.join(f'{t} {len(labeled[t])}' + (' (all kept)' if t in kept else '') for t in labeled)
    print(f'{what} (seed {args.seed}) of {len(ann["data_list"])} images: {sizes}, overlap {overlap} '
          f'({"/".join(drawn)}) -> {args.out}')
    return dict(labeled=labeled, meta=meta)


def main(argv=None) -> dict:
    """Write the split of the command line; return what was written.

    Raises:
        SystemExit: (status 2) bad input: one line ``<prog>: error: <file>[:line:col]: <what>`` on stderr.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return write_split(args)
    except SplitInputError as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')


if __name__ == '__main__':
    main()
