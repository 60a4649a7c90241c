"""Confusion matrices of saved predictions, over the images labeled for each task.

    python tools/test.py CONFIG CKPT --out preds.pkl
    python tools/analysis/confusion_matrix.py CONFIG preds.pkl OUT_DIR [--tasks det seg] [--score-thr 0.3]

det: mmdet's matrix with a background row/column (``--score-thr``, ``--tp-iou-thr``), over det-labeled images only
(an image not labeled for det adds no false positive). seg: pixel counts ``[gt, pred]`` over seg-labeled images
(ignore pixels left out). Writes ``{task}_confusion_matrix.{npy,png,json}`` to OUT_DIR (the JSON holds the counts,
the class names and the number of images used).
"""
import argparse
import json
import os
import os.path as osp

import numpy as np
from mmengine.config import Config, DictAction

import mtssl_mm  # noqa: F401
from mtssl_mm.evaluation.analysis import (build_test_dataset, det_confusion_matrix, iou_from_confusion, labeled_for,
                                          load_predictions, match_to_dataset, plot_confusion_matrix,
                                          seg_confusion_matrix)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Confusion matrices of a multi-task model\'s predictions')
    parser.add_argument('config', help='the config the predictions were made with (its test dataset)')
    parser.add_argument('prediction_path', help='predictions pickle of tools/test.py --out')
    parser.add_argument('save_dir', help='directory for the matrices (npy, png, json)')
    parser.add_argument('--tasks', nargs='+', default=['det', 'seg'], choices=['det', 'seg'])
    parser.add_argument('--score-thr', type=float, default=0.3, help='det: detections below it are dropped')
    parser.add_argument('--tp-iou-thr', type=float, default=0.5, help='det: IoU for a detection to match a box')
    parser.add_argument('--show', action='store_true', help='show the plots')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def load_inputs(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The config's test dataset and its ``(data_info, prediction)`` pairs.

    Bad input ends the command with one line ``<prog>: error: <file>: <what>`` and exit status 2 (no traceback): a
    missing config or pickle, a pickle that cannot be read (truncated, not a pickle) or is not the list that
    ``tools/test.py --out`` writes, a test set whose files are missing, predictions of other images than the test
    set's.

    Returns:
        tuple: The config, the dataset and the pairs.

    Raises:
        SystemExit: (status 2) on bad input, as above.
    """

    def fail(message):
        parser.exit(2, f'{parser.prog}: error: {message}\n')

    for path, what in ((args.config, 'config file'), (args.prediction_path, 'predictions pickle')):
        if not osp.isfile(path):
            fail(f'{path} does not exist (the {what})')
    try:
        preds = load_predictions(args.prediction_path)
    except Exception as e:  # noqa: BLE001 - unpickling a bad file raises anything (EOFError, UnpicklingError, ...)
        message = ' '.join(str(e).splitlines())  # load_predictions' own check names the file: a pickle of another thing
        fail(
            message if message.startswith(f'{args.prediction_path}: ') else
            f'{args.prediction_path}: cannot read the predictions pickle ({type(e).__name__}: {message})')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    try:
        dataset = build_test_dataset(cfg)
    except FileNotFoundError as e:
        fail(f'{args.config}: test dataset: {e}')
    try:
        pairs = match_to_dataset(preds, dataset)
    except KeyError as e:  # predictions of other images than the config's test set
        fail(f'{args.prediction_path}: {e.args[0]}')
    return cfg, dataset, pairs


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _, dataset, pairs = load_inputs(parser, args)
    os.makedirs(args.save_dir, exist_ok=True)
    for task in args.tasks:
        used = len(labeled_for(pairs, task))
        if task == 'det':
            names = list(dataset.metainfo['classes'])
            cm = det_confusion_matrix(pairs, len(names), args.score_thr, args.tp_iou_thr)
            names = names + ['background']
            extra = dict(score_thr=args.score_thr, tp_iou_thr=args.tp_iou_thr)
        else:
            names = list(dataset.metainfo['seg_classes'])
            cm = seg_confusion_matrix(pairs, len(names))
            iou, miou = iou_from_confusion(cm)
            extra = dict(
                iou={
                    n: (None if v != v else float(v))
                    for n, v in zip(names, iou)
                },
                miou=None if miou != miou else miou)
        stem = osp.join(args.save_dir, f'{task}_confusion_matrix')
        np.save(stem + '.npy', cm)
        with open(stem + '.json', 'w') as f:
            json.dump(
                dict(
                    task=task,
                    classes=names,
                    rows='ground truth',
                    columns='prediction',
                    num_images=used,
                    num_images_skipped=len(pairs) - used,
                    matrix=cm.tolist(),
                    **extra),
                f,
                indent=1)
        plot_confusion_matrix(
            cm, names, stem + '.png', title=f'{task}: normalized confusion matrix (%)', show=args.show)
        print(f'{task}: {used} images labeled for {task} ({len(pairs) - used} skipped), total count '
              f'{int(cm.sum())} -> {stem}.{{npy,json,png}}')


if __name__ == '__main__':
    main()
