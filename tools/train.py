"""Train a mtssl_mm model (mmdet's tools/train.py, plus CPU/gloo distributed runs)."""
import argparse
import os.path as osp

import mtssl_mm  # noqa: F401  (registers the components; configs also import it via custom_imports)
from mtssl_mm.datasets.samplers import check_dataloader_cfg
from mtssl_mm.utils.launch import add_launch_args, load_config, parse_launch_args, run_runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a multi-task model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False, help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or (no value) from the latest checkpoint in the '
        'work directory')
    add_launch_args(parser)  # --cfg-options, --launcher, --local_rank
    return parse_launch_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)  # the config, --cfg-options, the launcher, work_dir: CLI > config > ./work_dirs/<name>

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError(f'{args.config}: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    # resume: an explicit checkpoint, or the latest one in work_dir
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume: checkpoint {args.resume} does not exist')
        cfg.resume = True
        cfg.load_from = args.resume

    check_dataloader_cfg(cfg.train_dataloader)
    # CPU runs: the gloo group; then the Runner trains, and the process group is destroyed after it, also when
    # training raises (it must not outlive the interpreter: gloo aborts at exit)
    run_runner(cfg, args.launcher, 'train')


if __name__ == '__main__':
    main()
