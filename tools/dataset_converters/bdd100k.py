"""Merge BDD100K's detection (100k images) and semantic segmentation (10k images) sets into MultiTaskDataset files.

Usage::

    python tools/dataset_converters/bdd100k.py data/bdd100k [-o data/bdd100k/annotations] [--nproc 8]

Reads (paths relative to ``ROOT``; the official layout)::

    images/100k/{train,val}/<name>.jpg          detection images
    images/10k/{train,val}/<name>.jpg           segmentation images
    labels/det_20/det_{train,val}.json          Scalabel frames: [{"name": "<name>.jpg", "labels": [
                                                  {"category": ..., "attributes": {...}, "box2d": {x1,y1,x2,y2}}]}]
                                                (a {"frames": [...]} object is accepted too)
    labels/sem_seg/masks/{train,val}/<name>.png uint8 Cityscapes trainIds, 255 = ignore

Writes ``train.json`` and ``val.json`` into ``OUT`` (default ``ROOT/annotations``), paths relative to ``ROOT``,
and ``attributes_train.json`` / ``attributes_val.json``: the image attributes (``weather``, ``scene``,
``timeofday``) of every detection frame that has them, for ``MultiTaskDataset(task_ann_files=dict(attr=...))``
(task ``attr``, ``mtssl_mm/tasks/attributes/``; an image without an entry is unlabeled for it; ``undefined``
values are kept and mean "no target")::

    {"metainfo": {"attr_classes": {"weather": [...], "scene": [...], "timeofday": [...]}},
     "data_list": [{"img_path": "images/100k/train/<name>.jpg", "attributes": {"weather": "clear", ...}}, ...]}

Images of both sets are matched by file name (without extension); as in section 4.3 of the paper:

* **train**: every image of ``images/100k/train`` and ``images/10k/train``, once per name (the 100k path when
  the image is in both), labeled for ``det`` when ``det_train.json`` has a frame with a ``labels`` list for
  it, for ``seg`` when ``masks/train`` has its mask; an image in both is labeled for both. Images with no
  label entry are kept, labeled for no task (``labeled_tasks: []``; a frame without a ``labels`` key counts
  as no entry). The 10k-train images whose name is in the 100k val split (``images/100k/val`` or
  ``det_val.json``) are removed (the paper counts 454).
* **val**: the two subsets, each evaluated only for its task: every frame of ``det_val.json``
  (``images/100k/val``, ``labeled_tasks: ["det"]``) and every mask of ``masks/val`` (``images/10k/val``,
  ``labeled_tasks: ["seg"]``). Val images with no labels are left out and counted.

Detection classes (Table 9, in BDD100K's order): pedestrian, rider, car, truck, bus, train, motorcycle,
bicycle, traffic light, traffic sign. Category names follow BDD100K's ``det.toml``:

* legacy / alternative names are renamed: ``person`` -> pedestrian, ``bike`` -> bicycle, ``motor`` ->
  motorcycle, ``caravan`` and ``van`` -> car;
* ignore classes become ignore regions of a detection class (COCO evaluation needs a category; they are
  ``iscrowd`` there and never positives in training): ``other person`` -> pedestrian, ``other vehicle`` ->
  car, ``trailer`` -> truck, all with ``ignore_flag: 1``;
* a label with ``attributes.crowd: true`` keeps its class and gets ``ignore_flag: 1``;
* labels without ``box2d`` (lanes, drivable areas in the older ``bdd100k_labels_images_*.json`` files) are
  skipped and counted per category in the summary;
* any other category is an error naming the JSON file, the frame and the category.

Box convention: Scalabel's ``box2d`` includes its ``x2``/``y2`` pixel (its COCO export uses
``w = x2 - x1 + 1``), so boxes are written as ``[x1, y1, x2 + 1, y2 + 1]``: pixels with an exclusive
right/bottom edge, the convention of the Cityscapes converter and of COCO.

Bad input is an error naming the file: a missing folder or label file, a truncated or malformed label JSON
(with the line and column where it breaks off), an empty image folder, a frame or mask whose image does not
exist, an unreadable (empty, truncated, not PNG) mask or one whose size differs from its image, a duplicate
frame, an unknown category, a box with ``x2 < x1``. ``convert`` raises it as ``InputValueError`` /
``InputFileNotFoundError`` (``ValueError`` / ``FileNotFoundError``, see ``common.py``); the command line prints
it as one line ``bdd100k.py: error: <file>[:line:col]: <what>`` and exits with status 2, no traceback.
"""
import argparse
import glob
import os.path as osp
import sys
from collections import Counter
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # the converters' shared helpers
from common import (InputFileNotFoundError, InputValueError, dump, exit_on_input_error, image_size, load_json, rel,
                    run_tasks)

DET_CLASSES = ('pedestrian', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle', 'traffic light',
               'traffic sign')
# BDD100K's label colours (the Cityscapes colours of the same classes)
DET_PALETTE = [[220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100], [0, 0, 230],
               [119, 11, 32], [250, 170, 30], [220, 220, 0]]
NAME_MAPPING = {'person': 'pedestrian', 'bike': 'bicycle', 'motor': 'motorcycle', 'caravan': 'car', 'van': 'car'}
IGNORE_MAPPING = {'other person': 'pedestrian', 'other vehicle': 'car', 'trailer': 'truck'}
IMG_EXTS = ('.jpg', '.jpeg', '.png')
# BDD100K's image attributes and their values (besides "undefined"), as its label documentation lists them
ATTR_CLASSES = dict(
    weather=['rainy', 'snowy', 'clear', 'overcast', 'partly cloudy', 'foggy'],
    scene=['tunnel', 'residential', 'parking lot', 'city street', 'gas stations', 'highway'],
    timeofday=['daytime', 'night', 'dawn/dusk'])


def seg_metainfo() -> Tuple[list, list]:
    """The 19 segmentation classes and colours: Cityscapes' trainIds (from cityscapesscripts' table)."""
    from cityscapesscripts.helpers.labels import labels
    seg = sorted((lb for lb in labels if 0 <= lb.trainId < 255), key=lambda lb: lb.trainId)
    return [lb.name for lb in seg], [list(lb.color) for lb in seg]


def metainfo() -> dict:
    seg_classes, seg_palette = seg_metainfo()
    return dict(classes=list(DET_CLASSES), palette=DET_PALETTE, seg_classes=seg_classes, seg_palette=seg_palette)


def stem(name: str) -> str:
    """The matching key of an image or mask: its file name without folder and extension."""
    return osp.splitext(osp.basename(name))[0]


def list_dir(path: str, exts: Tuple[str, ...], what: str) -> Dict[str, str]:
    """``{stem: path}`` of the files of ``path`` with one of ``exts``.

    Raises:
        InputFileNotFoundError: the folder does not exist.
        InputValueError: it holds no such file, or two of the same stem.
    """
    if not osp.isdir(path):
        raise InputFileNotFoundError(f'{path} does not exist (expected the {what})')
    files = sorted(p for p in glob.glob(osp.join(path, '*')) if p.lower().endswith(exts))
    if not files:
        raise InputValueError(f'{path}: no {"/".join(exts)} file found (expected the {what})')
    out = {}
    for p in files:
        if stem(p) in out:
            raise InputValueError(f'{path}: two files named {stem(p)}.*: {out[stem(p)]} and {p}')
        out[stem(p)] = p
    return out


def load_frames(path: str) -> List[dict]:
    """The frames of a Scalabel JSON file (a list of frames, or ``{"frames": [...]}``).

    Raises:
        InputFileNotFoundError: no such file.
        InputValueError: truncated or malformed JSON (``'{path}:{line}:{col}: invalid JSON: ...'``), not a list
            of frames, a frame that is no object or whose ``labels`` is no list of objects.
    """
    if not osp.isfile(path):
        raise InputFileNotFoundError(f'{path} does not exist (expected Scalabel detection labels)')
    data = load_json(path)
    if isinstance(data, dict) and 'frames' in data:
        data = data['frames']
    if not isinstance(data, list):
        raise InputValueError(f'{path}: expected a list of Scalabel frames or {{"frames": [...]}}')
    for frame in data:
        if not isinstance(frame, dict):
            raise InputValueError(f'{path}: a frame is not an object: {str(frame)[:200]}')
        labels = frame.get('labels')
        if labels is not None and not (isinstance(labels, list) and all(isinstance(lb, dict) for lb in labels)):
            raise InputValueError(f'{path}: frame {frame.get("name")}: "labels" is not a list of objects: '
                                  f'{str(labels)[:200]}')
    return data


def convert_label(label: dict, json_path: str, frame: str) -> Optional[dict]:
    """One Scalabel label -> an instance dict, or None when it has no ``box2d`` (skipped, counted)."""
    category = label.get('category')
    box = label.get('box2d')
    if not box:
        return None
    ignore = 0
    if category in DET_CLASSES:
        name = category
    elif category in NAME_MAPPING:
        name = NAME_MAPPING[category]
    elif category in IGNORE_MAPPING:
        name, ignore = IGNORE_MAPPING[category], 1
    else:
        raise InputValueError(f'{json_path}: frame {frame}: unknown category {category!r}; known: '
                              f'{list(DET_CLASSES)}, renamed: {NAME_MAPPING}, ignored: {IGNORE_MAPPING}')
    if (label.get('attributes') or {}).get('crowd'):
        ignore = 1
    try:
        x1, y1, x2, y2 = (float(box[k]) for k in ('x1', 'y1', 'x2', 'y2'))
    except (KeyError, TypeError, ValueError) as e:
        raise InputValueError(f'{json_path}: frame {frame}: malformed box2d {box}') from e
    if x2 < x1 or y2 < y1:
        raise InputValueError(f'{json_path}: frame {frame}: box2d {box} has x2 < x1 or y2 < y1')
    return dict(bbox=[x1, y1, x2 + 1, y2 + 1], label=name, ignore_flag=ignore)


def convert_attributes(frame: dict, json_path: str) -> Optional[dict]:
    """The frame's ``weather``, ``scene`` and ``timeofday`` (``undefined`` if absent); None when it has none."""
    attrs = frame.get('attributes') or {}
    if not isinstance(attrs, dict):
        raise InputValueError(f'{json_path}: frame {frame.get("name")}: "attributes" is not an object: '
                              f'{str(attrs)[:200]}')
    if not any(a in attrs for a in ATTR_CLASSES):
        return None
    out = {}
    for attr, classes in ATTR_CLASSES.items():
        value = attrs.get(attr, 'undefined')
        if value != 'undefined' and value not in classes:
            raise InputValueError(f'{json_path}: frame {frame.get("name")}: unknown {attr} {value!r}; known: {classes} '
                                  'and "undefined"')
        out[attr] = value
    return out


def convert_det(json_path: str,
                images: Dict[str, str],
                stats: dict,
                attributes: Optional[dict] = None) -> Dict[str, List[dict]]:
    """``{stem: instances}`` of the frames with a ``labels`` list; counts into ``stats``; each frame's image
    attributes into ``attributes`` (``{stem: {attribute: value}}``) when given.

    Every frame must name an image of ``images`` (error naming the JSON file and the image otherwise).
    """
    out = {}
    for frame in load_frames(json_path):
        name = frame.get('name')
        if not name:
            raise InputValueError(f'{json_path}: a frame has no "name": {str(frame)[:200]}')
        key = stem(name)
        if key in out:
            raise InputValueError(f'{json_path}: frame {name} appears twice')
        if key not in images:
            raise InputFileNotFoundError(f'{json_path}: frame {name}: its image does not exist in '
                                         f'{osp.dirname(next(iter(images.values())))}')
        attrs = convert_attributes(frame, json_path) if attributes is not None else None
        if attrs is not None:
            attributes[key] = attrs
        if frame.get('labels') is None:
            stats['frames_without_labels'] += 1
            continue
        instances = []
        for label in frame['labels']:
            inst = convert_label(label, json_path, name)
            if inst is None:
                stats['boxless'][str(label.get('category'))] += 1
                continue
            instances.append(inst)
            stats['ignore' if inst['ignore_flag'] else 'boxes'][inst['label']] += 1
        out[key] = instances
    return out


def check_masks(masks: Dict[str, str], images: Dict[str, str]) -> None:
    for key, path in masks.items():
        if key not in images:
            raise InputFileNotFoundError(f'{path}: its image {key}.jpg does not exist in '
                                         f'{osp.dirname(next(iter(images.values())))}')


def measure(task: Tuple[str, Optional[str]]) -> Tuple[int, int]:
    """(height, width) of an image, after checking that its mask (if any) is readable and has the same size.

    Raises:
        InputValueError: an unreadable image (header) or mask (every chunk: a truncated mask is an error too), a
            mask whose size differs from its image's.
    """
    img, mask = task
    h, w = image_size(img)
    if mask is not None:
        mh, mw = image_size(mask, verify=True)
        if (mh, mw) != (h, w):
            raise InputValueError(f'{mask}: size {mw}x{mh} (WxH) differs from its image {img} ({w}x{h})')
    return h, w


def measure_all(tasks: List[Tuple[str, Optional[str]]], nproc: int, desc: str) -> List[Tuple[int, int]]:
    return run_tasks(measure, tasks, nproc, f'{desc}: reading the size of', chunksize=64)


def with_size(entry: dict, hw: Tuple[int, int]) -> dict:
    """``entry`` with ``height`` and ``width`` after ``img_path`` (the key order of the format)."""
    return dict(
        img_path=entry['img_path'], height=hw[0], width=hw[1], **{
            k: v
            for k, v in entry.items() if k != 'img_path'
        })


def new_stats() -> dict:
    return dict(boxes=Counter(), ignore=Counter(), boxless=Counter(), frames_without_labels=0)


def convert(root: str,
            out_dir: Optional[str] = None,
            nproc: int = 1,
            det_dir: str = 'labels/det_20',
            seg_dir: str = 'labels/sem_seg/masks') -> dict:
    """Merge the sets under ``root``; write ``train.json`` and ``val.json`` into ``out_dir``.

    Args:
        root (str): The BDD100K root (holds ``images/`` and ``labels/``).
        out_dir (str, optional): Output folder; ``root/annotations`` by default.
        nproc (int): Worker processes (reading image sizes).
        det_dir (str): Folder of ``det_{train,val}.json``, relative to ``root``.
        seg_dir (str): Folder of the ``{train,val}/*.png`` masks, relative to ``root``.

    Returns:
        dict: The summary (per split: image counts per label kind, boxes / ignore regions per class,
        box-less labels per category, frames without labels; ``removed_10k_train_in_100k_val``; ``files``).

    Raises:
        InputFileNotFoundError: a missing folder or label file, a frame or mask without its image.
        InputValueError: malformed labels or masks (module docstring); the message starts with the file.
    """
    root = osp.abspath(root)
    if not osp.isdir(root):
        raise InputFileNotFoundError(f'{root} does not exist (expected the BDD100K root)')
    out_dir = osp.abspath(out_dir or osp.join(root, 'annotations'))
    img = {
        (s, sp): list_dir(osp.join(root, 'images', s, sp), IMG_EXTS, f'{s} {sp} images')
        for s in ('100k', '10k')
        for sp in ('train', 'val')
    }
    masks = {
        sp: list_dir(osp.join(root, seg_dir, sp), ('.png', ), f'{sp} segmentation masks')
        for sp in ('train', 'val')
    }
    stats = {sp: new_stats() for sp in ('train', 'val')}
    attributes = {sp: {} for sp in ('train', 'val')}
    det = {
        sp: convert_det(osp.join(root, det_dir, f'det_{sp}.json'), img[('100k', sp)], stats[sp], attributes[sp])
        for sp in ('train', 'val')
    }
    check_masks(masks['train'], img[('10k', 'train')])
    check_masks(masks['val'], img[('10k', 'val')])
    summary = dict(files={})

    # ---- train: 100k-train + 10k-train by name, minus the 10k-train images of the 100k val split
    val_names = set(img[('100k', 'val')]) | set(det['val'])
    removed = sorted(k for k in img[('10k', 'train')] if k in val_names)
    removed_set = set(removed)
    names = sorted(set(img[('100k', 'train')]) | (set(img[('10k', 'train')]) - removed_set))
    tasks, entries = [], []
    for key in names:
        path = img[('100k', 'train')].get(key) or img[('10k', 'train')][key]
        labeled = []
        entry = dict(img_path=rel(path, root))
        if key in det['train']:
            labeled.append('det')
            entry['instances'] = det['train'][key]
        mask = masks['train'].get(key) if key in img[('10k', 'train')] else None
        if mask is not None:
            labeled.append('seg')
            entry['seg_map_path'] = rel(mask, root)
        entry['labeled_tasks'] = labeled
        entry.setdefault('instances', [])
        entries.append(entry)
        tasks.append((path, mask))
    entries = [with_size(e, hw) for e, hw in zip(entries, measure_all(tasks, nproc, 'train'))]
    kinds = Counter(tuple(e['labeled_tasks']) for e in entries)
    summary['train'] = dict(
        images=len(entries),
        det=kinds[('det', )] + kinds[('det', 'seg')],
        seg=kinds[('seg', )] + kinds[('det', 'seg')],
        both=kinds[('det', 'seg')],
        unlabeled=kinds[()],
        **stats['train'],
        masks_of_removed_images=sum(k in masks['train'] for k in removed))
    summary['removed_10k_train_in_100k_val'] = len(removed)
    path = osp.join(out_dir, 'train.json')
    dump(dict(metainfo=metainfo(), data_list=entries), path)
    summary['files']['train'] = path

    # ---- val: det subset (100k val) + seg subset (10k val), each labeled for its task only
    val_entries, tasks = [], []
    for key in sorted(det['val']):
        path = img[('100k', 'val')][key]
        val_entries.append(dict(img_path=rel(path, root), labeled_tasks=['det'], instances=det['val'][key]))
        tasks.append((path, None))
    for key in sorted(masks['val']):
        path = img[('10k', 'val')][key]
        val_entries.append(
            dict(
                img_path=rel(path, root),
                labeled_tasks=['seg'],
                seg_map_path=rel(masks['val'][key], root),
                instances=[]))
        tasks.append((path, masks['val'][key]))
    val_entries = [with_size(e, hw) for e, hw in zip(val_entries, measure_all(tasks, nproc, 'val'))]
    summary['val'] = dict(
        images=len(val_entries),
        det=len(det['val']),
        seg=len(masks['val']),
        names_in_both_subsets=len(set(det['val']) & set(masks['val'])),
        unlabeled_100k_val_images_left_out=len(set(img[('100k', 'val')]) - set(det['val'])),
        unlabeled_10k_val_images_left_out=len(set(img[('10k', 'val')]) - set(masks['val'])),
        **stats['val'])
    path = osp.join(out_dir, 'val.json')
    dump(dict(metainfo=metainfo(), data_list=val_entries), path)
    summary['files']['val'] = path
    for split, entries_of in (('train', entries), ('val', val_entries)):
        summary[split]['attr'] = write_attributes(attributes[split], entries_of, root, out_dir, split, summary)
    return summary


def write_attributes(attributes: Dict[str, dict], entries: List[dict], root: str, out_dir: str, split: str,
                     summary: dict) -> int:
    """Write ``attributes_{split}.json`` for the 100k images of ``entries`` that have attributes; their number."""
    data_list = []
    for entry in entries:
        key = stem(entry['img_path'])
        if entry['img_path'].startswith('images/100k/') and key in attributes:
            data_list.append(dict(img_path=entry['img_path'], attributes=attributes[key]))
    path = osp.join(out_dir, f'attributes_{split}.json')
    dump(dict(metainfo=dict(attr_classes=ATTR_CLASSES), data_list=data_list), path)
    summary['files'][f'attributes_{split}'] = path
    return len(data_list)


def format_summary(summary: dict) -> str:
    t, v = summary['train'], summary['val']
    lines = [
        '', 'BDD100K merge summary', '=' * 21, f'train: {t["images"]} images -> {summary["files"]["train"]}',
        f'  labeled for det {t["det"]}, for seg {t["seg"]}, for both {t["both"]}, for none {t["unlabeled"]}',
        f'  removed: {summary["removed_10k_train_in_100k_val"]} 10k-train images whose name is in the 100k '
        f'val split ({t["masks_of_removed_images"]} of them had a mask)',
        f'val: {v["images"]} images -> {summary["files"]["val"]}',
        f'  det subset {v["det"]} (100k val), seg subset {v["seg"]} (10k val), '
        f'names in both {v["names_in_both_subsets"]}',
        f'  unlabeled val images left out: 100k {v["unlabeled_100k_val_images_left_out"]}, '
        f'10k {v["unlabeled_10k_val_images_left_out"]}'
    ]
    for split, s in (('train', t), ('val', v)):
        lines.append(f'{split} boxes per class:        ' + ', '.join(f'{c} {s["boxes"][c]}' for c in DET_CLASSES) +
                     f' (total {sum(s["boxes"].values())})')
        lines.append(f'{split} ignore regions per class: ' + ', '.join(f'{c} {s["ignore"][c]}' for c in DET_CLASSES) +
                     f' (total {sum(s["ignore"].values())})')
        lines.append(f'{split} labels without box2d (skipped): ' +
                     (', '.join(f'{c} {n}' for c, n in sorted(s['boxless'].items())) or 'none'))
        lines.append(f'{split} frames without a labels list (not labeled for det): {s["frames_without_labels"]}')
        lines.append(f'{split} images with attributes (task attr): {s["attr"]} -> '
                     f'{summary["files"]["attributes_" + split]}')
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Merge BDD100K detection (images/100k, labels/det_20) and semantic segmentation '
        '(images/10k, labels/sem_seg/masks) into MultiTaskDataset annotation files train.json and val.json.')
    parser.add_argument('root', help='BDD100K root (holds images/ and labels/)')
    parser.add_argument('-o', '--out-dir', default=None, help='output folder (default: ROOT/annotations)')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes (default: 1)')
    parser.add_argument(
        '--det-dir',
        default='labels/det_20',
        help='folder of det_train.json / det_val.json, relative to ROOT (default: labels/det_20)')
    parser.add_argument(
        '--seg-dir',
        default='labels/sem_seg/masks',
        help='folder of the train/ and val/ masks, relative to ROOT (default: labels/sem_seg/masks)')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None) -> dict:
    """Convert, print the summary and return it.

    Raises:
        SystemExit: (status 2) bad input: one line ``<prog>: error: <file>[:line:col]: <what>`` on stderr.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with exit_on_input_error(parser):
        summary = convert(args.root, args.out_dir, nproc=args.nproc, det_dir=args.det_dir, seg_dir=args.seg_dir)
    print(format_summary(summary))
    return summary


if __name__ == '__main__':
    main()
