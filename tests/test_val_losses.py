"""Table 7's validation losses: each task's supervised loss on the validation images labeled for it, from the
prediction's own forward pass, averaged as in training (Eq. 3: per image for detection; labeled pixels for
segmentation) over the whole set and across ranks, reported by MultiTaskMetric as ``'{task}/val_loss_*'``."""
import os.path as osp

import pytest
import torch
from mmdet.registry import DATASETS, METRICS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

import mtssl_mm  # noqa: F401
from fixtures import TINY_CONFIG, write_dataset
from gloo_group import init_gloo, start_gloo_processes

LABELS = [('det', 'seg'), ('det', ), ('seg', ), (), ('det', 'seg'), ('det', )]
KEYS = ('det/val_loss_cls', 'det/val_loss_bbox', 'seg/val_loss_ce')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('val'))
    write_dataset(root, LABELS, split='val', seed=3)
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.val_dataloader.dataset.data_root = root
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval(), dataset


def evaluate(model, dataset, indices, batch_size=2, size=None):
    """Validation as the ValLoop runs it (test_step per batch, the metric over all), on ``indices``; ``size``: the
    number of samples over all ranks (mmengine truncates the collected results to it)."""
    metric = METRICS.build(dict(type='MultiTaskMetric'))
    metric.dataset_meta = dataset.metainfo
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            batch = pseudo_collate([dataset[i] for i in indices[start:start + batch_size]])
            metric.process(batch, [s.to_dict() for s in model.test_step(batch)])
    return metric.evaluate(size or len(indices))


def test_reported_losses_equal_the_tasks_loss_on_the_same_images(setup):
    model, dataset = setup
    got = evaluate(model, dataset, list(range(len(dataset))))
    assert set(KEYS) <= set(got)
    # directly: the model's supervised loss (eval mode: the same outputs) on all images in one batch, through the
    # training preprocessor (which pads the seg maps); its normalisers are the same, so the values must agree
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(len(dataset))]), True)
        direct = model.loss(data['inputs'], data['data_samples'])
    for key in KEYS:
        want = float(direct[key.replace('/val_', '.')] if 'seg' in key else sum(direct[key.replace('/val_', '.')]))
        assert got[key] == pytest.approx(want, rel=1e-4), key
        assert want > 0


def test_images_not_labeled_for_a_task_add_nothing(setup):
    model, dataset = setup
    all_images = evaluate(model, dataset, list(range(len(dataset))))
    det_only = evaluate(model, dataset, [i for i, t in enumerate(LABELS) if 'det' in t])
    seg_only = evaluate(model, dataset, [i for i, t in enumerate(LABELS) if 'seg' in t])
    for key in KEYS[:2]:
        assert det_only[key] == pytest.approx(all_images[key], rel=1e-5)
    assert seg_only['seg/val_loss_ce'] == pytest.approx(all_images['seg/val_loss_ce'], rel=1e-5)
    only_det = evaluate(model, dataset, [i for i, t in enumerate(LABELS) if t == ('det', )])
    assert 'det/val_loss_cls' in only_det and not any(k.startswith('seg/') for k in only_det)


def test_the_switch_turns_them_off(setup):
    model, dataset = setup
    model.val_losses = False
    try:
        got = evaluate(model, dataset, list(range(len(dataset))))
    finally:
        model.val_losses = True
    assert not any('val_loss' in k for k in got) and 'det/bbox_mAP' in got


def _worker(rank, ports, world_size, out, model, dataset):
    import torch.distributed as dist
    init_gloo(rank, world_size, ports)
    try:
        mine = list(range(rank, len(dataset), world_size))  # mmengine's DefaultSampler shards like this
        result = evaluate(model, dataset, mine, batch_size=1, size=len(dataset))
        if rank == 0:
            torch.save({
                k: float(v)
                for k, v in result.items() if isinstance(v, (int, float))
            }, osp.join(out, 'val.pth'))
    finally:
        dist.destroy_process_group()


def test_two_ranks_report_one_processs_values(setup, tmp_path):
    model, dataset = setup
    start_gloo_processes(_worker, args=(2, str(tmp_path), model, dataset), nprocs=2)
    got = torch.load(osp.join(tmp_path, 'val.pth'))
    want = evaluate(model, dataset, list(range(len(dataset))))
    for key in KEYS:
        assert got[key] == pytest.approx(want[key], rel=1e-5), key
