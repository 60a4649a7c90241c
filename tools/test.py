"""Evaluate a checkpoint: both tasks, or one alone (``--tasks det``); flip TTA (``--tta``); draw (``--show``)."""
import argparse
import warnings

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmengine.config import ConfigDict

import mtssl_mm  # noqa: F401
from mtssl_mm.models import build_tta_pipeline, predictor_config
from mtssl_mm.utils.launch import add_launch_args, load_config, parse_launch_args, run_runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a multi-task model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--tasks', nargs='+', help='run and evaluate only these tasks (e.g. --tasks det)')
    parser.add_argument('--out', help='dump the predictions to this pickle file')
    parser.add_argument('--show', action='store_true', help='show each prediction in a window (needs a display)')
    parser.add_argument('--show-dir', help='directory where painted images are saved (under work_dir/timestamp)')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each image is shown with --show')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='flip test-time augmentation for every task (cfg.tta_model, cfg.tta_pipeline or one '
        'built from the test pipeline)')
    add_launch_args(parser)  # --cfg-options, --launcher, --local_rank
    return parse_launch_args(parser, argv)


def restrict_tasks(cfg, tasks):
    """Run and evaluate only ``tasks``: the model predicts them, the evaluator and datasets only know them.

    The model keeps every head (the checkpoint loads strictly); only ``predict_tasks`` is set. Training configs
    select tasks differently: by naming the heads to build (``model.tasks``) and the datasets' ``tasks``.

    ``predict_tasks`` goes on :func:`~mtssl_mm.models.predictor_config` (for a semi-supervised config, the node
    both its student and its EMA teacher are built from).

    Raises:
        ValueError: A task the model does not have (the message names ``--tasks`` and the known tasks).
    """
    predictor = predictor_config(cfg)
    known = list(predictor.tasks)  # a task set to None is an error of the model (tasks are selected by name)
    tasks = list(dict.fromkeys(tasks))  # in the given order, each once
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f'--tasks: unknown task(s) {unknown}; the model ({cfg.model.type}) has the tasks {known}')
    predictor.predict_tasks = tasks
    cfg.test_evaluator.tasks = list(tasks)
    for dataset in leaf_datasets(cfg.test_dataloader.dataset):
        dataset.tasks = tuple(tasks)


def leaf_datasets(dataset_cfg) -> list:
    """The dataset configs under wrappers (``dataset``) and concatenations (``datasets``), each a
    ``MultiTaskDataset`` that takes ``tasks``."""
    if 'datasets' in dataset_cfg:
        return [leaf for d in dataset_cfg['datasets'] for leaf in leaf_datasets(d)]
    if 'dataset' in dataset_cfg:
        return leaf_datasets(dataset_cfg['dataset'])
    return [dataset_cfg]


def innermost_dataset(dataset_cfg):
    """The dataset config that holds the pipeline (through wrappers such as ``ConcatDataset``'s ``dataset``)."""
    while 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    return dataset_cfg


def apply_tta(cfg):
    """Wrap ``cfg.model`` in ``cfg.tta_model`` and give the test dataset ``cfg.tta_pipeline``, as mmdet's ``--tta``.

    Without ``tta_model`` in the config, :class:`MultiTaskTTAModel` with mmdet's NMS settings; without
    ``tta_pipeline``, :func:`build_tta_pipeline` of the test pipeline (the image and its horizontal flip). Works for
    supervised and semi-supervised configs (the wrapped ``MultiTaskSemiSupervised`` predicts with its teacher).
    """
    if 'tta_model' not in cfg:
        warnings.warn('--tta: no tta_model in the config; using MultiTaskTTAModel with its defaults')
        cfg.tta_model = dict(type='MultiTaskTTAModel')
    dataset = innermost_dataset(cfg.test_dataloader.dataset)
    if 'tta_pipeline' not in cfg:
        cfg.tta_pipeline = build_tta_pipeline(dataset.pipeline)
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    dataset.pipeline = cfg.tta_pipeline


def main(argv=None):
    args = parse_args(argv)
    # the config, --cfg-options, the launcher, work_dir: CLI > config > ./work_dirs/<name>
    cfg = load_config(args, required=[(args.checkpoint, 'checkpoint')])
    cfg.load_from = args.checkpoint
    if args.tasks:
        restrict_tasks(cfg, args.tasks)
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)  # draw=True; show and wait_time, test_out_dir
    if args.tta:
        apply_tta(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        cfg.test_evaluator = [cfg.test_evaluator, dict(type='DumpResults', out_file_path=args.out)]

    # CPU runs: the gloo group; then the Runner tests, and the process group is destroyed after it, also when
    # testing raises (it must not outlive the interpreter: gloo aborts at exit)
    run_runner(cfg, args.launcher, 'test')


if __name__ == '__main__':
    main()
