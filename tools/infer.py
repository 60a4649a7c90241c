"""Run a trained model on one's own images (no label files needed): boxes as JSON, segmentation as PNG, pictures.

    python tools/infer.py CONFIG CKPT INPUTS... --out-dir DIR [--device cpu] [--batch-size 1] [--score-thr 0.3]
                          [--tasks det seg] [--no-vis] [--train-ids]

INPUTS are image files, folders (searched recursively) and glob patterns (quote them: ``'data/**/*.png'``).
Writes, per image, ``DIR/preds/<name>.json``, ``DIR/seg/<name>.png`` and ``DIR/vis/<name>.jpg``
(see :class:`mtssl_mm.apis.MultiTaskInferencer`).
"""
import argparse
import os.path as osp

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Predict boxes and segmentation on images without labels')
    parser.add_argument('config', help='config file (the one the checkpoint was trained with)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('inputs', nargs='+', help='image files, folders (recursive) and glob patterns')
    parser.add_argument('--out-dir', required=True, help='output folder: preds/, seg/, vis/')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1 (default: cuda if available)')
    parser.add_argument('--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument('--score-thr', type=float, default=0.3, help='boxes scoring below it are left out')
    parser.add_argument('--tasks', nargs='+', help='predict only these tasks (e.g. --tasks det)')
    parser.add_argument('--no-vis', action='store_true', help='do not draw vis/ pictures')
    parser.add_argument('--train-ids', action='store_true',
                        help='write class indices (trainIds) to seg/ even where the config maps them to label ids')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.batch_size < 1:
        raise SystemExit(f'--batch-size must be >= 1, got {args.batch_size}')
    for path, what in ((args.config, 'config file'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise SystemExit(f'{what} {path} does not exist')

    from mmengine.config import Config

    from mtssl_mm.apis import MultiTaskInferencer, collect_images
    try:
        images = collect_images(args.inputs)  # before loading the model: a wrong input fails at once
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    inferencer = MultiTaskInferencer(cfg, args.checkpoint, device=args.device, tasks=args.tasks,
                                     score_thr=args.score_thr, train_ids=args.train_ids)
    results = inferencer(images, batch_size=args.batch_size, out_dir=args.out_dir, no_save_vis=args.no_vis)
    n = len(results['predictions'])
    boxes = sum(len(p.get('boxes', ())) for p in results['predictions'])
    written = ['preds/'] + (['seg/'] if 'seg' in inferencer.predict_tasks else []) + ([] if args.no_vis else
                                                                                       ['vis/'])
    print(f'{n} images, {boxes} boxes with score >= {args.score_thr}; wrote {", ".join(written)} in {args.out_dir}')
    return results


if __name__ == '__main__':
    main()
