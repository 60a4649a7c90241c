"""Convert the official Cityscapes tree into :class:`MultiTaskDataset` annotation files.

Usage::

    python tools/dataset_converters/cityscapes.py data/cityscapes [-o data/cityscapes/annotations] [--nproc 8]

Reads (paths relative to ``ROOT``; the layout of the official zip files)::

    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png            required
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png              required (uint8 label ids)
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png           required (16-bit)
    leftImg8bit/train_extra/<city>/*_leftImg8bit.png                                optional (or under
        leftImg8bit_trainextra/leftImg8bit/train_extra/ or leftImg8bit_trainextra/train_extra/)
    leftImg8bit_sequence/train/<city>/*_leftImg8bit.png                             optional

Writes into ``OUT`` (default ``ROOT/annotations``) ``train.json`` and ``val.json`` (every image labeled for
``det`` and ``seg``) and, when the optional sets are present, ``train_extra.json`` and ``sequence.json``
(every image labeled for no task: ``labeled_tasks: []``). Image and label paths in them are relative to
``ROOT`` (the config's ``data_root``). The official test split is not converted (its public labels are
empty); ``--splits train val test`` converts a ``test`` split with real labels (the generated data of
``make demo``) into ``test.json`` the same way.

Detection targets come from ``_gtFine_instanceIds.png``: a pixel value ``id * 1000 + k`` is instance ``k`` of
label id ``id``; a value ``< 1000`` is the bare label id (stuff, or a *crowd group* of an instance class).
The detection classes are the labels of cityscapesscripts' table with ``hasInstances`` and not
``ignoreInEval``: person, rider, car, truck, bus, train, motorcycle, bicycle (in trainId order).

* One box per instance of a detection class, enclosing *every* pixel carrying its value (an instance split
  into several pieces by an occluder gets one box around all pieces).
* Crowd groups: the pixels holding the bare id of a detection class become one ignore region per class and
  image (``ignore_flag: 1``, ``label`` = that class), enclosing all of that class's crowd pixels; never an
  instance.
* Instances of classes that have instances but are ignored in evaluation (caravan, trailer) give no box; they
  are counted in the summary.
* Box convention: ``[x1, y1, x2, y2]`` in pixels with an *exclusive* right/bottom edge:
  ``x1 = min_x, y1 = min_y, x2 = max_x + 1, y2 = max_y + 1`` (the box covers the pixels' extents, so a
  one-pixel instance is ``[x, y, x + 1, y + 1]``). This is COCO's convention (``w = x2 - x1``).

Segmentation targets are the 19 trainIds of cityscapesscripts' table (every other id -> 255), written once as
``gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png`` next to the official ``_labelIds.png`` (as mmseg's
converter does). An existing map that is newer than its ``_labelIds.png`` and of the right size is kept
(``--overwrite`` rewrites it).

The sequence set (``leftImg8bit_sequence/train``) holds the 30 frames around every train image, one of which
*is* that train image; those frames are left out of ``sequence.json`` (counted in the summary), so
``sequence.json`` holds the 86,275 = 30 * 2,975 - 2,975 extra frames of section 4.2. The val/test sequence
frames are never used (they would leak the validation set).

Bad input is an error naming the file: a missing image or label file, an unreadable (empty, truncated, not
PNG) label map or one whose size differs from its image, an instance id of an unknown or non-instance class, an
empty or missing split directory. ``convert`` raises it as ``InputValueError`` / ``InputFileNotFoundError``
(``ValueError`` / ``FileNotFoundError``, see ``common.py``); the command line prints it as one line
``cityscapes.py: error: <file>: <what>`` and exits with status 2, no traceback.
"""
import argparse
import glob
import os.path as osp
import sys
from collections import Counter
from typing import List, Optional, Sequence, Tuple

import numpy as np
from cityscapesscripts.helpers.labels import id2label, labels
from PIL import Image

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # the converters' shared helpers
from common import (InputFileNotFoundError, InputValueError, dump, exit_on_input_error, image_size, read_png, rel,
                    run_tasks)

IMG_SUFFIX = '_leftImg8bit.png'
LABEL_IDS_SUFFIX = '_gtFine_labelIds.png'
INSTANCE_IDS_SUFFIX = '_gtFine_instanceIds.png'
TRAIN_IDS_SUFFIX = '_gtFine_labelTrainIds.png'
LABELED_SPLITS = ('train', 'val')

# everything below is derived from cityscapesscripts' label table, never re-typed
DET_LABELS = sorted((lb for lb in labels if lb.hasInstances and not lb.ignoreInEval), key=lambda lb: lb.trainId)
DET_CLASSES = tuple(lb.name for lb in DET_LABELS)
DET_PALETTE = [list(lb.color) for lb in DET_LABELS]
DET_IDS = {lb.id: lb.name for lb in DET_LABELS}
SKIPPED_INSTANCE_IDS = {lb.id: lb.name for lb in labels if lb.hasInstances and lb.ignoreInEval}
SEG_LABELS = sorted((lb for lb in labels if 0 <= lb.trainId < 255), key=lambda lb: lb.trainId)
SEG_CLASSES = tuple(lb.name for lb in SEG_LABELS)
SEG_PALETTE = [list(lb.color) for lb in SEG_LABELS]
assert [lb.trainId for lb in SEG_LABELS] == list(range(19)), 'cityscapesscripts: expected trainIds 0..18'


def id_to_train_id_lut() -> np.ndarray:
    """Look-up table label id -> trainId.

    Returns:
        np.ndarray: (256,) uint8; ids without a trainId (and ids not in the table) map to 255.
    """
    lut = np.full(256, 255, np.uint8)
    for lb in SEG_LABELS:
        if 0 <= lb.id < 256:
            lut[lb.id] = lb.trainId
    return lut


LUT = id_to_train_id_lut()


def metainfo() -> dict:
    """The ``metainfo`` of every annotation file (class names and RGB palettes of the official table)."""
    return dict(classes=list(DET_CLASSES), palette=DET_PALETTE, seg_classes=list(SEG_CLASSES), seg_palette=SEG_PALETTE)


def instances_from_instance_ids(inst: np.ndarray, path: str = '') -> Tuple[List[dict], Counter, Counter]:
    """Boxes of the detection-class instances and crowd groups of one ``_instanceIds`` map.

    Args:
        inst (np.ndarray): (H, W) integer map, ``id * 1000 + k`` for instances, the bare label id elsewhere.
        path (str): The file it was read from (error messages).

    Returns:
        tuple: ``instances`` (list of ``{"bbox": [x1, y1, x2, y2], "label": name, "ignore_flag": 0|1}``, boxes
        in pixels with exclusive right/bottom edges, instances in order of their pixel value, then one ignore
        box per crowd class), a Counter of skipped instances per class (caravan, trailer) and a Counter of
        crowd regions per class.

    Raises:
        InputValueError: an instance pixel value of a label id that is unknown or has no instances.
    """
    inst = inst.astype(np.int64)
    is_inst = inst >= 1000
    bad = np.unique(inst[is_inst] // 1000)
    for cid in bad.tolist():
        if cid not in DET_IDS and cid not in SKIPPED_INSTANCE_IDS:
            name = id2label[cid].name if cid in id2label else 'unknown'
            raise InputValueError(f'{path}: instance pixel value {cid}xxx has label id {cid} ({name}), which is '
                                  f'not a class with instances in cityscapesscripts\' label table')
    is_crowd = ~is_inst & np.isin(inst, list(DET_IDS))
    ys, xs = np.nonzero(is_inst | is_crowd)
    vals = inst[ys, xs]
    order = np.argsort(vals, kind='stable')
    ys, xs, vals = ys[order], xs[order], vals[order]
    uniq, start = np.unique(vals, return_index=True)
    instances, skipped, crowd = [], Counter(), Counter()
    if len(uniq) == 0:
        return instances, skipped, crowd
    x1s, x2s = np.minimum.reduceat(xs, start), np.maximum.reduceat(xs, start)
    y1s, y2s = np.minimum.reduceat(ys, start), np.maximum.reduceat(ys, start)
    crowd_instances = []
    for v, x1, y1, x2, y2 in zip(uniq.tolist(), x1s.tolist(), y1s.tolist(), x2s.tolist(), y2s.tolist()):
        box = [x1, y1, x2 + 1, y2 + 1]
        if v < 1000:  # crowd group of a detection class: ignore region
            crowd_instances.append(dict(bbox=box, label=DET_IDS[v], ignore_flag=1))
            crowd[DET_IDS[v]] += 1
        elif v // 1000 in SKIPPED_INSTANCE_IDS:
            skipped[SKIPPED_INSTANCE_IDS[v // 1000]] += 1
        else:
            instances.append(dict(bbox=box, label=DET_IDS[v // 1000], ignore_flag=0))
    return instances + crowd_instances, skipped, crowd


def write_train_ids(label_ids_path: str, label_ids: np.ndarray, overwrite: bool = False) -> Tuple[str, bool]:
    """Write ``_gtFine_labelTrainIds.png`` next to ``label_ids_path`` unless an up-to-date one exists.

    Returns:
        tuple: The path written (or kept) and whether it was written.
    """
    out = label_ids_path[:-len(LABEL_IDS_SUFFIX)] + TRAIN_IDS_SUFFIX
    if not overwrite and osp.isfile(out) and osp.getmtime(out) >= osp.getmtime(label_ids_path):
        try:
            with Image.open(out) as im:
                if im.size[::-1] == label_ids.shape:
                    return out, False
        except Exception:  # noqa: BLE001 - unreadable: rewrite it
            pass
    if label_ids.min() < 0 or label_ids.max() > 255:
        raise InputValueError(f'{label_ids_path}: label ids outside 0..255')
    Image.fromarray(LUT[label_ids.astype(np.int64)]).save(out)  # uint8 -> mode L
    return out, True


def convert_labeled(task: Tuple[str, str, str, bool]) -> Tuple[dict, dict]:
    """Convert one train/val image: its boxes, its trainId map and its annotation entry.

    Args:
        task (tuple): ``(root, img_path, gt_dir, overwrite)`` with ``gt_dir`` the gtFine folder of its city.

    Returns:
        tuple: The ``data_list`` entry and per-image statistics (``boxes``, ``ignore``, ``skipped`` Counters,
        ``written`` bool).

    Raises:
        InputFileNotFoundError: a missing label map.
        InputValueError: an unreadable image or label map, a label map of another size than its image, an
            instance of an unknown class.
    """
    root, img_path, gt_dir, overwrite = task
    stem = osp.basename(img_path)[:-len(IMG_SUFFIX)]
    h, w = image_size(img_path)
    label_ids_path = osp.join(gt_dir, stem + LABEL_IDS_SUFFIX)
    instance_ids_path = osp.join(gt_dir, stem + INSTANCE_IDS_SUFFIX)
    label_ids = read_png(label_ids_path)
    inst = read_png(instance_ids_path)
    for p, arr in ((label_ids_path, label_ids), (instance_ids_path, inst)):
        if arr.shape != (h, w):
            raise InputValueError(f'{p}: size {arr.shape[1]}x{arr.shape[0]} (WxH) differs from its image '
                                  f'{img_path} ({w}x{h})')
    instances, skipped, crowd = instances_from_instance_ids(inst, instance_ids_path)
    train_ids_path, written = write_train_ids(label_ids_path, label_ids, overwrite)
    entry = dict(
        img_path=rel(img_path, root),
        height=h,
        width=w,
        labeled_tasks=['det', 'seg'],
        seg_map_path=rel(train_ids_path, root),
        instances=instances)
    boxes = Counter(i['label'] for i in instances if not i['ignore_flag'])
    return entry, dict(boxes=boxes, ignore=crowd, skipped=skipped, written=written)


def convert_unlabeled(task: Tuple[str, str]) -> Tuple[dict, dict]:
    """The annotation entry of one image labeled for no task (train_extra, sequence)."""
    root, img_path = task
    h, w = image_size(img_path)
    return dict(img_path=rel(img_path, root), height=h, width=w, labeled_tasks=[], instances=[]), {}


def list_images(split_dir: str) -> Tuple[List[str], int]:
    """The ``*_leftImg8bit.png`` files of ``split_dir/<city>/``, sorted, and the number of other files there.

    Raises:
        InputFileNotFoundError: ``split_dir`` does not exist.
        InputValueError: it holds no image.
    """
    if not osp.isdir(split_dir):
        raise InputFileNotFoundError(f'{split_dir} does not exist (expected <city>/*{IMG_SUFFIX} under it)')
    files = sorted(p for p in glob.glob(osp.join(split_dir, '*', '*')) if osp.isfile(p))
    images = [p for p in files if p.endswith(IMG_SUFFIX)]
    if not images:
        raise InputValueError(f'{split_dir}: no image <city>/*{IMG_SUFFIX} found (empty or not the official layout)')
    return images, len(files) - len(images)


def check_labels_have_images(gt_split_dir: str, img_split_dir: str, images: Sequence[str]) -> None:
    """Every ``_labelIds.png`` of gtFine must have its image (a missing image is an error naming it)."""
    have = {osp.basename(p)[:-len(IMG_SUFFIX)] for p in images}
    for p in sorted(glob.glob(osp.join(gt_split_dir, '*', '*' + LABEL_IDS_SUFFIX))):
        stem = osp.basename(p)[:-len(LABEL_IDS_SUFFIX)]
        if stem not in have:
            city = osp.basename(osp.dirname(p))
            raise InputFileNotFoundError(f'{osp.join(img_split_dir, city, stem + IMG_SUFFIX)} does not exist (the '
                                         f'image labeled by {p})')


def find_train_extra(root: str) -> Optional[str]:
    """The train_extra folder (one of the layouts the official zip gives), or None."""
    candidates = [
        osp.join(root, 'leftImg8bit', 'train_extra'),
        osp.join(root, 'leftImg8bit_trainextra', 'leftImg8bit', 'train_extra'),
        osp.join(root, 'leftImg8bit_trainextra', 'train_extra')
    ]
    found = [c for c in candidates if osp.isdir(c)]
    if len(found) > 1:
        raise InputValueError(f'{root}: train_extra found twice: {found}; keep one')
    if not found and osp.isdir(osp.join(root, 'leftImg8bit_trainextra')):
        raise InputFileNotFoundError(f'{osp.join(root, "leftImg8bit_trainextra")} exists but holds neither '
                                     f'leftImg8bit/train_extra/ nor train_extra/')
    return found[0] if found else None


def find_sequence(root: str) -> Optional[str]:
    """``leftImg8bit_sequence/train``, or None when the sequence set is absent."""
    seq = osp.join(root, 'leftImg8bit_sequence')
    if not osp.isdir(seq):
        return None
    if not osp.isdir(osp.join(seq, 'train')):
        raise InputFileNotFoundError(f'{seq} exists but has no train/ folder (expected train/<city>/*{IMG_SUFFIX})')
    return osp.join(seq, 'train')


def convert(root: str,
            out_dir: Optional[str] = None,
            nproc: int = 1,
            overwrite: bool = False,
            splits: Sequence[str] = LABELED_SPLITS) -> dict:
    """Convert the tree under ``root``; write the annotation files into ``out_dir``.

    Args:
        root (str): The Cityscapes root (holds ``leftImg8bit/`` and ``gtFine/``).
        out_dir (str, optional): Output folder; ``root/annotations`` by default.
        nproc (int): Worker processes.
        overwrite (bool): Rewrite existing ``_labelTrainIds.png`` maps.
        splits (Sequence[str]): The labeled splits to convert (default ``('train', 'val')``; ``'test'`` only
            for a tree whose test labels exist).

    Returns:
        dict: The summary: per split ``images``; for train/val ``boxes`` and ``ignore`` (crowd regions) per
        class, ``skipped_instances`` per class, ``train_id_maps_written`` / ``_kept``; ``other_files``;
        ``sequence_frames_of_train_images`` (left out); ``files`` (split -> annotation file written).

    Raises:
        InputFileNotFoundError: a missing folder, image or label map.
        InputValueError: unreadable or inconsistent files (module docstring); the message starts with the file.
        ValueError: ``splits`` without ``train`` or with an unknown split.
    """
    root = osp.abspath(root)
    if not osp.isdir(root):
        raise InputFileNotFoundError(f'{root} does not exist (expected the Cityscapes root)')
    out_dir = osp.abspath(out_dir or osp.join(root, 'annotations'))
    unknown = [s for s in splits if s not in LABELED_SPLITS + ('test', )]
    if unknown or 'train' not in splits:
        raise ValueError(f'splits must include train and be among train, val, test; got {list(splits)}')
    summary = dict(files={})
    jobs = {}
    for split in splits:  # list and check everything before the long part
        img_dir, gt_dir = osp.join(root, 'leftImg8bit', split), osp.join(root, 'gtFine', split)
        images, other = list_images(img_dir)
        if not osp.isdir(gt_dir):
            raise InputFileNotFoundError(f'{gt_dir} does not exist (the gtFine labels of {img_dir})')
        check_labels_have_images(gt_dir, img_dir, images)
        jobs[split] = (images, other, gt_dir)
    extra_dir, seq_dir = find_train_extra(root), find_sequence(root)
    unlabeled = {}
    if extra_dir:
        unlabeled['train_extra'] = list_images(extra_dir)
    if seq_dir:
        images, other = list_images(seq_dir)
        train_names = {osp.basename(p) for p in jobs['train'][0]}
        kept = [p for p in images if osp.basename(p) not in train_names]
        summary['sequence_frames_of_train_images'] = len(images) - len(kept)
        unlabeled['sequence'] = (kept, other)

    for split, (images, other, gt_dir) in jobs.items():
        tasks = [(root, p, osp.join(gt_dir, osp.basename(osp.dirname(p))), overwrite) for p in images]
        results = run_tasks(convert_labeled, tasks, nproc, f'{split}')
        stats = dict(
            images=len(results),
            boxes=Counter(),
            ignore=Counter(),
            skipped_instances=Counter(),
            train_id_maps_written=0,
            train_id_maps_kept=0,
            other_files=other)
        for _, s in results:
            stats['boxes'].update(s['boxes'])
            stats['ignore'].update(s['ignore'])
            stats['skipped_instances'].update(s['skipped'])
            stats['train_id_maps_written' if s['written'] else 'train_id_maps_kept'] += 1
        path = osp.join(out_dir, f'{split}.json')
        dump(dict(metainfo=metainfo(), data_list=[e for e, _ in results]), path)
        summary[split] = stats
        summary['files'][split] = path
    for split, (images, other) in unlabeled.items():
        results = run_tasks(convert_unlabeled, [(root, p) for p in images], nproc, split)
        path = osp.join(out_dir, f'{split}.json')
        dump(dict(metainfo=metainfo(), data_list=[e for e, _ in results]), path)
        summary[split] = dict(images=len(results), other_files=other)
        summary['files'][split] = path
    return summary


def format_summary(summary: dict) -> str:
    """The summary as printed at the end of a conversion."""
    lines = ['', 'Cityscapes conversion summary', '=' * 29]
    for split in ('train', 'val', 'test', 'train_extra', 'sequence'):
        if split not in summary:
            continue
        s = summary[split]
        lines.append(f'{split}: {s["images"]} images -> {summary["files"][split]}')
        if 'boxes' in s:
            for key, title in (('boxes', 'boxes per class:         '), ('ignore', 'crowd (ignore) regions:  ')):
                lines.append(f'  {title} ' + ', '.join(f'{c} {s[key][c]}'
                                                       for c in DET_CLASSES) + f' (total {sum(s[key].values())})')
            lines.append('  instances without a box:  ' +
                         (', '.join(f'{c} {n}' for c, n in sorted(s['skipped_instances'].items())) or 'none') +
                         ' (classes ignored in evaluation)')
            lines.append(f'  labelTrainIds maps:       {s["train_id_maps_written"]} written, '
                         f'{s["train_id_maps_kept"]} already up to date')
        if s['other_files']:
            lines.append(f'  other files in the image folders (not images, ignored): {s["other_files"]}')
    if 'sequence_frames_of_train_images' in summary:
        lines.append(f'sequence: {summary["sequence_frames_of_train_images"]} frames are train images '
                     f'themselves and were left out')
    for split in ('train_extra', 'sequence'):
        if split not in summary:
            lines.append(f'{split}: not found (optional)')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Convert the official Cityscapes tree (leftImg8bit/, gtFine/, optional train_extra and '
        'sequence) into MultiTaskDataset annotation files (train.json, val.json, train_extra.json, '
        'sequence.json) and _labelTrainIds.png maps.')
    parser.add_argument('root', help='Cityscapes root (holds leftImg8bit/ and gtFine/)')
    parser.add_argument('-o', '--out-dir', default=None, help='output folder (default: ROOT/annotations)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes (default: 1)')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=list(LABELED_SPLITS),
        choices=LABELED_SPLITS + ('test', ),
        help='labeled splits to convert (default: train val; test only where its labels exist, '
        'as in the generated demo data)')
    parser.add_argument(
        '--overwrite', action='store_true', help='rewrite _labelTrainIds.png maps even when an up-to-date one exists')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None) -> dict:
    """Convert, print the summary and return it.

    Raises:
        SystemExit: (status 2) bad input: one line ``<prog>: error: <file>: <what>`` on stderr.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if 'train' not in args.splits:
        parser.exit(2, f'{parser.prog}: error: --splits must include train, got {args.splits}\n')
    with exit_on_input_error(parser):
        summary = convert(args.root, args.out_dir, nproc=args.nproc, overwrite=args.overwrite, splits=args.splits)
    print(format_summary(summary))
    return summary


if __name__ == '__main__':
    main()
