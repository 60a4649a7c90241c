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
from mmengine.config import DictAction

import mtssl_mm  # noqa: F401
from mtssl_mm.evaluation.analysis import (det_confusion_matrix, iou_from_confusion, labeled_for, load_inputs,
                                          plot_confusion_matrix, seg_confusion_matrix)


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
