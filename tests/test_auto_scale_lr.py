"""auto_scale_lr.base_batch_size of every config is the global batch of Table 10 for its method.

Table 10 trains with lr 1e-3 on a global batch of 8 for the supervised baselines and of 16 for FixMatch* and
Dense FixMatch (8 labeled + 8 others with explicit sampling, 16 drawn uniformly with implicit sampling), on
8 GPUs. ``tools/train.py --auto-scale-lr`` multiplies the lr by (processes x train_dataloader.batch_size) /
base_batch_size (mmengine's ``Runner.scale_lr``), so the paper's lr per image is kept on another GPU count only
if base_batch_size is that global batch. The demo configs are the real configs changed only in size
(tests/test_demo.py): they keep their method's base_batch_size, but train on one process with a batch of their
own, so the 8-GPU product is not checked for them.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from fixtures import REPO

CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, REPO).split(osp.sep))
PAPER_GPUS = 8
BASE_BATCH = dict(supervised=8, semi=16)


def test_every_config_is_checked():
    groups = {osp.basename(osp.dirname(p)) for p in CONFIGS}
    assert groups == {'bdd100k', 'cityscapes', 'cityscapes_extra', 'cityscapes_lowdata', 'cityscapes_sequence', 'demo'}
    assert len(CONFIGS) >= 60


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, osp.join(REPO, 'configs')) for p in CONFIGS])
def test_base_batch_size_is_the_methods_global_batch(path):
    cfg = Config.fromfile(path)
    method = 'semi' if cfg.model.type == 'MultiTaskSemiSupervised' else 'supervised'
    assert cfg.model.type in ('MultiTaskSemiSupervised', 'MultiTaskModel'), cfg.model.type
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=BASE_BATCH[method])  # on with --auto-scale-lr
    loader = cfg.train_dataloader
    if osp.basename(osp.dirname(path)) != 'demo':
        assert loader.batch_size * PAPER_GPUS == BASE_BATCH[method]
        assert cfg.optim_wrapper.optimizer.lr == 1e-3  # Table 10's lr, for that batch
    if (loader.get('sampler') or {}).get('type') == 'ExplicitSampler':  # the batch holds both chunks
        assert method == 'semi' and loader.sampler.batch_size == loader.batch_size


@pytest.mark.parametrize('config, processes, per_process', [('cityscapes_lowdata/supervised_partial.py', 8, 1),
                                                            ('cityscapes_lowdata/supervised_partial.py', 2, 1),
                                                            ('cityscapes_lowdata/fixmatch_explicit.py', 8, 2),
                                                            ('cityscapes_lowdata/fixmatch_explicit.py', 2, 2),
                                                            ('bdd100k/densefixmatch_implicit.py', 4, 2)])
def test_auto_scale_lr_keeps_the_papers_lr_per_image(config, processes, per_process):
    """mmengine's Runner.scale_lr with the config's auto_scale_lr: the lr per image of the global batch is
    Table 10's (1e-3 / 8 supervised, 1e-3 / 16 semi-supervised) whatever the number of processes."""
    from types import SimpleNamespace

    import torch
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper
    from mmengine.runner import Runner
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    runner = SimpleNamespace(
        _train_dataloader=dict(batch_size=per_process),
        world_size=processes,
        logger=MMLogger.get_current_instance(),
        param_schedulers=None)
    Runner.scale_lr(runner, OptimWrapper(optimizer), dict(cfg.auto_scale_lr, enable=True))  # --auto-scale-lr
    paper_batch = BASE_BATCH['semi' if cfg.model.type == 'MultiTaskSemiSupervised' else 'supervised']
    assert optimizer.param_groups[0]['lr'] / (processes * per_process) == pytest.approx(1e-3 / paper_batch)
