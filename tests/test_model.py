"""MultiTaskModel: partial-label loss masking (checked on gradients) and joint prediction."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData, PixelData

import mtssl_mm  # noqa: F401
from fixtures import REPO, TINY_CONFIG, unpadded_meta

H, W = 64, 96


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    cfg = Config.fromfile(TINY_CONFIG)
    m = MODELS.build(cfg.model)
    m.init_weights()
    # eval(): BN uses running statistics and dropout is off, so samples do not interact through the batch
    return m.eval()


def sample(tasks, n_boxes=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    ds = DetDataSample(metainfo=unpadded_meta(H, W, labeled_tasks=tuple(tasks)))
    boxes = torch.tensor([[10., 20., 50., 50.], [60., 10., 90., 40.]])[:n_boxes]
    ds.gt_instances = InstanceData(bboxes=boxes, labels=torch.full((n_boxes, ), 2, dtype=torch.long))
    ds.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    seg = torch.randint(0, 19, (1, H, W), generator=g).to(torch.uint8)  # as PackMultiTaskInputs packs it
    ds.gt_sem_seg = PixelData(sem_seg=seg if 'seg' in tasks else torch.full_like(seg, 255))
    return ds


def total(value):
    """A loss entry as one tensor (mmdet returns per-level lists)."""
    return sum(value) if isinstance(value, (list, tuple)) else value


def input_grads(model, samples, key):
    x = torch.randn(len(samples), 3, H, W, generator=torch.Generator().manual_seed(1), requires_grad=True)
    losses = model.loss(x, samples)
    sum(total(v) for k, v in losses.items() if k.startswith(key) and 'loss' in k).backward()
    return x.grad, losses


def test_loss_keys_name_their_task(model):
    _, losses = input_grads(model, [sample(('det', 'seg'))], 'det')
    assert {'det.loss_cls', 'det.loss_bbox', 'seg.loss_ce', 'det.num_labeled', 'seg.num_labeled'} <= set(losses)


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_unlabeled_samples_get_no_gradient(model, task):
    other = 'seg' if task == 'det' else 'det'
    # sample 0 labeled for the task, sample 1 labeled for the other task only, sample 2 for nothing
    samples = [sample((task, ), seed=0), sample((other, ), seed=1), sample((), seed=2)]
    grad, losses = input_grads(model, samples, task)
    assert grad[0].abs().sum() > 0
    assert torch.count_nonzero(grad[1]) == 0 and torch.count_nonzero(grad[2]) == 0
    assert losses[f'{task}.num_labeled'].item() == 1


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_loss_equals_loss_of_labeled_part_alone(model, task):
    """Eq. 3: unlabeled samples change neither the value nor the normalisation of L_s,t."""
    x = torch.randn(3, 3, H, W, generator=torch.Generator().manual_seed(2))
    mixed = [sample((task, ), seed=0), sample((), seed=1), sample((task, ), n_boxes=2, seed=2)]
    with torch.no_grad():
        full = model.loss(x, mixed)
        alone = model.loss(x[[0, 2]], [mixed[0], mixed[2]])
    for k in model.tasks[task].loss_keys:
        torch.testing.assert_close(total(full[f'{task}.{k}']), total(alone[f'{task}.{k}']))


def test_det_labeled_without_objects_is_all_negative_not_unlabeled(model):
    samples = [sample(('det', ), n_boxes=0, seed=0), sample((), n_boxes=0, seed=1)]
    grad, losses = input_grads(model, samples, 'det')
    assert total(losses['det.loss_cls']) > 0, 'an all-negative image still has a classification loss'
    assert grad[0].abs().sum() > 0
    assert torch.count_nonzero(grad[1]) == 0
    assert losses['det.num_labeled'].item() == 1


def test_no_labeled_sample_gives_finite_zero_connected_to_every_head_parameter(model):
    m = copy.deepcopy(model)
    x = torch.randn(2, 3, H, W)
    losses = m.loss(x, [sample(()), sample(())])
    loss = sum(total(v) for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss) and loss.item() == 0
    loss.backward()
    for name, p in m.tasks.named_parameters():
        assert p.grad is not None, f'{name} got no gradient: DDP would fail on a rank without labels'


def test_task_weight_scales_only_that_task(model):
    m = copy.deepcopy(model)
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        base = m.loss(x, [sample(('det', 'seg'))])
        m.tasks['seg'].loss_weight = 0.5
        half = m.loss(x, [sample(('det', 'seg'))])
    torch.testing.assert_close(half['seg.loss_ce'], base['seg.loss_ce'] * 0.5)
    torch.testing.assert_close(total(half['det.loss_cls']), total(base['det.loss_cls']))


def test_predict_gives_both_tasks_from_one_pass_and_single_task_on_request(model):
    x = torch.randn(1, 3, H, W)
    calls = []
    handle = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            out = model.predict(x, [sample(('det', 'seg'))])[0]
    finally:
        handle.remove()
    assert len(calls) == 1
    assert out.pred_sem_seg.sem_seg.shape == (1, H, W)
    assert out.pred_instances.bboxes.shape[1] == 4
    m = copy.deepcopy(model)
    m.predict_tasks = ('seg', )
    with torch.no_grad():
        only = m.predict(x, [sample(('det', 'seg'))])[0]
    assert 'pred_sem_seg' in only and 'pred_instances' not in only


def test_single_task_model_from_config():
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.tasks = dict(det=cfg.model.tasks.det)  # selected by name
    m = MODELS.build(cfg.model)
    assert list(m.tasks) == ['det']
    with pytest.raises(KeyError, match='predict_tasks'):
        MODELS.build(dict(cfg.model, predict_tasks=['seg']))


def test_a_task_set_to_none_is_an_error_pointing_to_selection_by_name():
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.tasks.seg = None
    with pytest.raises(ValueError, match=r"\['seg'\] set to None.*_delete_=True, det=_base_.model.tasks.det"):
        MODELS.build(cfg.model)


@pytest.mark.parametrize('config', [
    'configs/cityscapes/supervised_det.py', 'configs/bdd100k/supervised_seg.py',
    'configs/cityscapes_lowdata/fixmatch_implicit_det.py'
])
def test_single_task_configs_name_their_task(config):
    """A single-task baseline builds its one head and its datasets serve that task alone, whatever tasks the
    base configs have (a task added to the base does not join it)."""
    cfg = Config.fromfile(osp.join(REPO, config))
    model = cfg.model.detector if 'detector' in cfg.model else cfg.model
    task = 'det' if config.endswith('det.py') else 'seg'
    assert list(model.tasks) == [task]
    assert cfg.train_dataloader.dataset.tasks == (task, ) and cfg.test_dataloader.dataset.tasks == (task, )


def test_init_weights_reaches_every_task_head(model):
    # RetinaNet's classifier starts at the prior p = 0.01 (bias = -log(99)); an uninitialised head gives a
    # focal loss in the thousands and diverges
    bias = model.tasks['det'].head.retina_cls.bias
    torch.testing.assert_close(bias, torch.full_like(bias, -4.59512), atol=1e-4, rtol=0)


@pytest.mark.parametrize('name,value,key',
                         [('loss_decode', dict(type='mmseg.CrossEntropyLoss', class_weight=[1.0] * 19), 'class_weight'),
                          ('sampler', dict(type='mmseg.OHEMPixelSampler', thresh=0.7), 'sampler'),
                          ('loss_decode', dict(type='mmseg.DiceLoss'), 'CrossEntropyLoss')])
def test_seg_losses_that_cannot_be_normalised_globally_are_errors(name, value, key):
    cfg = Config.fromfile(TINY_CONFIG).model
    cfg.tasks.seg.head[name] = value
    with pytest.raises(ValueError, match=f'SegmentationTask: head.*{key}'):
        MODELS.build(cfg)


@pytest.mark.parametrize('dataset_tasks', [('det', ), ('det', 'seg', 'attr')])
def test_training_data_whose_tasks_differ_from_the_model_is_an_error(model, dataset_tasks):
    """A model task the dataset does not serve (seg head, det-only data) or a dataset task without a head would
    train silently on no label / drop labels: the loss refuses the batch and names both task lists."""
    samples = [sample(('det', ), seed=i) for i in range(2)]
    inputs = torch.randn(2, 3, H, W)
    model.loss(inputs, samples)  # samples without the dataset's `tasks` metainfo are not checked
    for ds in samples:
        ds.set_metainfo(dict(tasks=('det', 'seg')))
    model.loss(inputs, samples)
    samples[1].set_metainfo(dict(tasks=dataset_tasks))
    with pytest.raises(ValueError, match=r"the model has the tasks \['det', 'seg'\].*train_dataloader.dataset.tasks"):
        model.loss(inputs, samples)
