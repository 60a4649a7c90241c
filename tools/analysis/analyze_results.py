"""Per-image scores of saved predictions and the N worst / best images of each task, drawn.

    python tools/test.py CONFIG CKPT --out preds.pkl
    python tools/analysis/analyze_results.py CONFIG preds.pkl SHOW_DIR [--tasks det seg] [--topk 20]

Only the images labeled for a task are scored for it. det: AP@[.5:.95] of the image (as mmdet's
``analyze_results.py``; an image without boxes scores 1 if nothing is detected, else 0); seg: the image's mIoU
over the classes in its ground truth or prediction. Writes ``SHOW_DIR/{task}_scores.json`` (every scored image,
worst first) and ``SHOW_DIR/{task}/{worst,best}/NN_score_name.png``: ground truth (left) and prediction (right),
both tasks, drawn with the config's visualizer (``MultiTaskLocalVisualizer``).
"""
import argparse
import json
import os
import os.path as osp

import mmcv
import numpy as np
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.config import DictAction
from mmengine.structures import InstanceData, PixelData

import mtssl_mm  # noqa: F401
from mtssl_mm.evaluation.analysis import gt_boxes, image_scores, load_inputs, load_seg_map, worst_and_best


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Worst and best images of a multi-task model\'s predictions')
    parser.add_argument('config', help='the config the predictions were made with (its test dataset)')
    parser.add_argument('prediction_path', help='predictions pickle of tools/test.py --out')
    parser.add_argument('show_dir', help='directory for the drawn images and the per-image scores')
    parser.add_argument('--tasks', nargs='+', default=['det', 'seg'], choices=['det', 'seg'])
    parser.add_argument('--topk', type=int, default=20, help='how many worst and best images to draw per task')
    parser.add_argument('--show-score-thr', type=float, default=0.3, help='det: boxes drawn and scored from here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of the config')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def to_data_sample(info: dict, pred: dict) -> DetDataSample:
    """Ground truth of the tasks the image is labeled for, and the predictions, as a ``DetDataSample``."""
    ds = DetDataSample(metainfo=dict(img_path=info['img_path']))
    if 'det' in info['labeled_tasks']:
        boxes, labels, _ = gt_boxes(info)
        ds.gt_instances = InstanceData(bboxes=torch.from_numpy(boxes), labels=torch.from_numpy(labels))
    if 'seg' in info['labeled_tasks']:
        ds.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(load_seg_map(info).astype(np.int64))[None])
    if 'pred_instances' in pred:
        inst = pred['pred_instances']
        ds.pred_instances = InstanceData(bboxes=inst['bboxes'], scores=inst['scores'], labels=inst['labels'])
    if 'pred_sem_seg' in pred:
        ds.pred_sem_seg = PixelData(sem_seg=torch.as_tensor(pred['pred_sem_seg']['sem_seg']))
    return ds


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg, dataset, pairs = load_inputs(parser, args)
    by_path = {info['img_path']: (info, pred) for info, pred in pairs}
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, vis_backends=None))  # images go to out_file only
    visualizer.dataset_meta = dataset.metainfo
    os.makedirs(args.show_dir, exist_ok=True)
    for task in args.tasks:
        num_classes = len(dataset.metainfo['classes' if task == 'det' else 'seg_classes'])
        scores = image_scores(pairs, task, num_classes, args.show_score_thr)
        worst, best = worst_and_best(scores, args.topk)
        with open(osp.join(args.show_dir, f'{task}_scores.json'), 'w') as f:
            json.dump(
                dict(
                    task=task,
                    num_images=len(scores),
                    mean=float(np.mean([s['score'] for s in scores])) if scores else None,
                    images=sorted(scores, key=lambda s: s['score'])),
                f,
                indent=1)
        for kind, entries in (('worst', worst), ('best', best)):
            out_dir = osp.join(args.show_dir, task, kind)
            os.makedirs(out_dir, exist_ok=True)
            for rank, entry in enumerate(entries):
                info, pred = by_path[entry['img_path']]
                img = mmcv.imconvert(mmcv.imread(info['img_path']), 'bgr', 'rgb')
                name = f'{rank:02d}_{entry["score"]:.3f}_{osp.splitext(osp.basename(info["img_path"]))[0]}'
                visualizer.add_datasample(
                    name,
                    img,
                    to_data_sample(info, pred),
                    draw_gt=True,
                    draw_pred=True,
                    show=False,
                    pred_score_thr=args.show_score_thr,
                    out_file=osp.join(out_dir, name + '.png'))
        print(f'{task}: {len(scores)} images labeled for {task} scored; {len(worst)} worst and {len(best)} best '
              f'drawn under {osp.join(args.show_dir, task)}')


if __name__ == '__main__':
    main()
