"""Run a trained model on one's own images (no label files needed): boxes as JSON, segmentation as PNG, pictures.

    python tools/infer.py CONFIG CKPT INPUTS... --out-dir DIR [--device cpu] [--batch-size 1] [--score-thr 0.3]
                          [--tasks det seg] [--no-vis] [--train-ids]

INPUTS are image files, folders (searched recursively) and glob patterns (quote them: ``'data/**/*.png'``).
Writes, per image, ``DIR/preds/<name>.json``, ``DIR/seg/<name>.png`` and ``DIR/vis/<name>.jpg``
(see :class:`mtssl_mm.apis.MultiTaskInferencer`).

An image that cannot be read (empty, truncated, not an image) is skipped with a warning naming it; every other
image's outputs are written, the skipped files are listed on stderr at the end and the exit status is 1. Bad
command-line input (a missing config, checkpoint or input) is one line ``infer.py: error: <what>`` and exit
status 2, before the model is loaded.
"""
import argparse
import os.path as osp
import sys
import warnings

from mmengine.config import DictAction


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument(
        '--train-ids',
        action='store_true',
        help='write class indices (trainIds) to seg/ even where the config maps them to label ids')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override settings of the config, key=value pairs')
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None):
    """Predict on the inputs and write the outputs; return the inferencer's results.

    Raises:
        SystemExit: status 2 for bad command-line input (one line ``<prog>: error: <what>`` on stderr, nothing
            written); status 1 after writing every other image's outputs when some images could not be read (they
            are listed on stderr).
    """
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(message):
        parser.exit(2, f'{parser.prog}: error: {message}\n')

    if args.batch_size < 1:
        fail(f'--batch-size must be >= 1, got {args.batch_size}')
    for path, what in ((args.config, 'config file'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            fail(f'{path}: {what} does not exist')

    from mmengine.config import Config

    from mtssl_mm.apis import MultiTaskInferencer, collect_images
    from mtssl_mm.apis.inferencer import UnreadableImageWarning
    try:
        images = collect_images(args.inputs)  # before loading the model: a wrong input fails at once
    except FileNotFoundError as e:
        fail(str(e))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    inferencer = MultiTaskInferencer(
        cfg, args.checkpoint, device=args.device, tasks=args.tasks, score_thr=args.score_thr, train_ids=args.train_ids)
    with warnings.catch_warnings():  # a skipped image: one line naming it, as it happens
        show = warnings.showwarning

        def show_warning(message, category, *rest, **kwargs):
            if issubclass(category, UnreadableImageWarning):
                print(f'{parser.prog}: warning: {message}', file=sys.stderr)
            else:
                show(message, category, *rest, **kwargs)

        warnings.showwarning = show_warning
        warnings.simplefilter('always', UnreadableImageWarning)
        results = inferencer(images, batch_size=args.batch_size, out_dir=args.out_dir, no_save_vis=args.no_vis)
    n = len(results['predictions'])
    boxes = sum(len(p.get('boxes', ())) for p in results['predictions'])
    written = ['preds/'] + (['seg/'] if 'seg' in inferencer.predict_tasks else []) + ([] if args.no_vis else ['vis/'])
    print(f'{n} images, {boxes} boxes with score >= {args.score_thr}; wrote {", ".join(written)} in {args.out_dir}')
    skipped = results['skipped']
    if skipped:
        print(
            f'{parser.prog}: {len(skipped)} of {n + len(skipped)} images could not be read and were skipped (no '
            'output for them):',
            *skipped,
            sep='\n  ',
            file=sys.stderr)
        raise SystemExit(1)
    return results


if __name__ == '__main__':
    main()
