"""End-to-end run on generated data, for machines with no dataset and no GPU.

Generates a small partially labeled street-scene set (mtssl_mm.datasets.toy), trains the supervised
multi-task model of ``configs/demo/supervised_tiny.py`` on it through mmengine's Runner, evaluates it with
the project's evaluator (COCO mAP, mIoU, geometric mean) and prints and saves the metrics.
"""
import argparse
import json
import os
import os.path as osp
import time

from mmengine.config import Config
from mmengine.runner import Runner

import mtssl_mm  # noqa: F401
from mtssl_mm.datasets.toy import write_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'demo', 'supervised_tiny.py')
MIX = [('det', 'seg'), ('det', ), ('seg', ), ()]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='demo_out', help='output folder (data, logs, metrics)')
    parser.add_argument('--iters', type=int, default=60, help='training iterations')
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--quick', action='store_true', help='a smoke run: 8 iterations')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    iters = 8 if args.quick else args.iters
    data_root = osp.abspath(osp.join(args.out, 'data'))
    write_dataset(data_root, MIX * 8, split='train', seed=0)
    write_dataset(data_root, [('det', 'seg')] * 8, split='val', seed=1)

    cfg = Config.fromfile(CONFIG)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data_root
    cfg.work_dir = osp.abspath(osp.join(args.out, 'supervised_tiny'))
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.param_scheduler[0].end = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = max(1, iters // 10)
    cfg.randomness = dict(seed=0)

    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()
    wall = time.time() - start
    result = {k: float(v) for k, v in metrics.items()}
    result['wall_time_s'] = round(wall, 1)
    with open(osp.join(args.out, 'metrics.json'), 'w') as f:
        json.dump(result, f, indent=2)
    print('\nsupervised multi-task, {} iterations on {} generated images ({:.0f} s):'.format(
        iters, len(MIX) * 8, wall))
    for key in ('det/bbox_mAP', 'seg/mIoU', 'multitask/gmean'):
        print(f'  {key:18s} {result.get(key, float("nan")):.4f}')
    print(f'metrics written to {osp.join(args.out, "metrics.json")}')


if __name__ == '__main__':
    main()
