"""The hooks in a real Runner: quality scalars to scalars.json and TensorBoard, pictures to PNGs and TensorBoard."""
import glob
import json
import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import mtssl_mm  # noqa: F401
from mtssl_mm.engine import PseudoLabelQualityHook, PseudoLabelVisHook
from fixtures import REPO, tiny_cfg, write_dataset

DENSE = f'{REPO}/configs/demo/densefixmatch_tiny.py'
# the names the demo plots: a contract
QUALITY_TAGS = ['seg.pl/acc', 'seg.pl/mIoU', 'seg.pl/in_view'] + [
    f'det.pl/{m}@{t}' for m in ('precision', 'recall', 'boxes_per_img') for t in ('0.3', '0.5', '0.7')
]


@HOOKS.register_module(force=True)
class _ConfidentTeacherHook(Hook):
    """Test only: after EMATeacherHook copied the student, make the teacher sure of boxes (sigma_det keeps some)."""
    priority = 'LOW'

    def before_train(self, runner):
        with torch.no_grad():
            runner.model.teacher.tasks['det'].head.retina_cls.bias.fill_(4.0)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    """4 iterations of tiny Dense FixMatch with both hooks every 2 iterations, on a split that withholds labels."""
    root = str(tmp_path_factory.mktemp('data'))
    ann = write_dataset(root, [('det', 'seg')] * 6, split='train', seed=4)
    names = [d['img_path'] for d in ann['data_list']]
    with open(osp.join(root, 'split.json'), 'w') as f:
        json.dump(dict(labeled=dict(det=names[:2], seg=names[1:3])), f)
    work = str(tmp_path_factory.mktemp('work'))
    cfg = tiny_cfg(root, work, config=DENSE)
    cfg.train_dataloader.dataset.update(split_file='split.json', withheld_labels=True)
    cfg.custom_hooks += [
        dict(type='PseudoLabelQualityHook', interval=2),
        dict(type='PseudoLabelVisHook', interval=2, num_samples=2),
        dict(type='_ConfidentTeacherHook')
    ]
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=4)
    cfg.default_hooks.checkpoint = None
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    runner.train()
    (vis_dir, ) = glob.glob(osp.join(work, '*', 'vis_data'))
    return vis_dir


def read_events(vis_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    (path, ) = glob.glob(osp.join(vis_dir, 'events.out.tfevents.*'))
    acc = EventAccumulator(path, size_guidance={'scalars': 0, 'images': 0})
    acc.Reload()
    return acc


def test_quality_scalars_reach_scalars_json_and_tensorboard(run_dir):
    local = {}
    with open(osp.join(run_dir, 'scalars.json')) as f:
        for line in f:
            entry = json.loads(line)
            step = entry.pop('step')
            for tag, value in entry.items():
                local.setdefault(tag, {})[step] = value
    board = read_events(run_dir)
    for tag in QUALITY_TAGS:
        assert tag in local, f'{tag} missing from scalars.json (has {sorted(local)})'
        assert sorted(local[tag]) == [2, 4], tag
        assert all(0.0 <= v <= 1.0 for v in local[tag].values()) or 'boxes_per_img' in tag, tag
        events = {e.step: e.value for e in board.Scalars(tag)}
        assert events.keys() == local[tag].keys(), tag
        for step, value in local[tag].items():
            assert abs(events[step] - value) <= 1e-6 * max(1.0, abs(value)), (tag, step)
    # a confident teacher keeps boxes; fewer at higher thresholds
    assert local['det.pl/boxes_per_img@0.3'][2] >= local['det.pl/boxes_per_img@0.7'][2] > 0


def test_pictures_reach_pngs_and_tensorboard(run_dir):
    pngs = sorted(osp.basename(p) for p in glob.glob(osp.join(run_dir, 'vis_image', '*.png')))
    assert pngs == ['pseudo_labels_0_2.png', 'pseudo_labels_0_4.png', 'pseudo_labels_1_2.png', 'pseudo_labels_1_4.png']
    image = cv2.imread(osp.join(run_dir, 'vis_image', 'pseudo_labels_0_2.png'))
    # two 64 x 64 views, enlarged 4 times (the shorter side to 256 px), under title bands, 4 px apart
    assert image.shape == (256 + 16, 2 * 256 + 4, 3)
    left, right = image[16:, :256], image[16:, 260:]
    assert not np.array_equal(left, right), 'the strong view must differ from the weak one'
    board = read_events(run_dir)
    assert {'pseudo_labels_0', 'pseudo_labels_1'} <= set(board.Tags()['images'])
    assert sorted(e.step for e in board.Images('pseudo_labels_0')) == [2, 4]


def tiny_tasks(**extra):
    """The tiny model's task modules (they draw their own labels), and ``extra`` name -> task config."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    tasks = dict(Config.fromfile(f'{REPO}/configs/demo/supervised_tiny.py').model.tasks, **extra)
    return {n: MODELS.build(dict(c, name=n)) for n, c in tasks.items()}


def test_draw_puts_boxes_and_seg_overlay_on_both_views():
    from mtssl_mm.visualization import MultiTaskLocalVisualizer
    from fixtures import DET_CLASSES, SEG_CLASSES
    vis = MultiTaskLocalVisualizer(name='draw_test')
    vis.dataset_meta = dict(classes=DET_CLASSES, seg_classes=SEG_CLASSES)
    gray = np.full((32, 48, 3), 128, np.uint8)
    seg = torch.full((32, 48), 255, dtype=torch.long)
    seg[20:] = 0
    box = InstanceData(bboxes=torch.tensor([[4., 4., 20., 16.]]), labels=torch.tensor([2]), scores=torch.tensor([.9]))
    view = dict(weak=gray, strong=gray, pseudo=dict(det=box, seg=seg), warped=dict(seg=seg))
    image = PseudoLabelVisHook.draw(vis, view, tiny_tasks())
    assert image.shape == (8 * 32 + 16, 2 * 8 * 48 + 4, 3) and image.dtype == np.uint8  # enlarged 8 times
    weak, strong = image[16:, :8 * 48], image[16:, 8 * 48 + 4:]
    assert (weak[8 * 25] != 128).any() and (strong[8 * 25] != 128).any(), 'seg overlay on both views'
    assert (weak[8 * 10, 8 * 22:] == 128).all() and (strong[8 * 10] == 128).all(), 'no overlay on ignored pixels'
    edge = (slice(8 * 4 - 1, 8 * 4 + 2), slice(8 * 4, 8 * 20))  # the box's top edge, scaled with the picture
    assert (weak[edge] != 128).any() and (strong[edge] == 128).all(), 'the box only where given'


def test_attribute_pseudo_labels_are_drawn_as_a_caption():
    """An (A,) attribute pseudo-label is the task's own caption (not misread as a map), on the strong view too."""
    from mtssl_mm.visualization import MultiTaskLocalVisualizer
    vis = MultiTaskLocalVisualizer(name='draw_attr_test')
    vis.dataset_meta = dict(attr_classes=dict(weather=['clear', 'rainy', 'snowy'], scene=['street', 'highway']))
    tasks = tiny_tasks(attr=dict(type='AttributesTask', attributes=dict(weather=3, scene=2), in_channels=512))
    gray = np.full((32, 48, 3), 128, np.uint8)
    labels = torch.tensor([2, -1])
    view = dict(weak=gray, strong=gray, pseudo=dict(attr=labels), warped=dict(attr=labels))
    image = PseudoLabelVisHook.draw(vis, view, tasks)
    weak, strong = image[16:, :8 * 48], image[16:, 8 * 48 + 4:]
    assert (weak[:30, :120] != 128).any() and (strong[:30, :120] != 128).any(), 'a caption at the top left'
    assert (weak[60:] == 128).all(), 'nothing else drawn'
    caption = tasks['attr'].draw_labels(vis, gray.copy(), torch.tensor([2, -1]))
    other = tasks['attr'].draw_labels(vis, gray.copy(), torch.tensor([0, 1]))
    assert not np.array_equal(caption, other), 'the caption says which classes'


def fake_runner(model):
    messages = []
    logger = SimpleNamespace(
        warning=lambda m: messages.append(('warning', m)), info=lambda m: messages.append(('info', m)))
    return SimpleNamespace(model=model, logger=logger, messages=messages, iter=9, max_iters=100, visualizer=None)


def test_hooks_refuse_a_supervised_model():
    runner = fake_runner(torch.nn.Linear(1, 1))
    for hook in (PseudoLabelQualityHook(), PseudoLabelVisHook()):
        with pytest.raises(TypeError, match='MultiTaskSemiSupervised'):
            hook.before_train(runner)


def test_an_interval_without_withheld_labels_warns_once():
    hook = PseudoLabelQualityHook(interval=10)
    runner = fake_runner(None)
    zero = dict(num_images=torch.zeros((), dtype=torch.float64))
    for _ in range(2):
        hook._sums = dict(det=dict(zero), seg=dict(zero))
        hook._write(runner, model=None)  # nothing measured: no metric, no scalar
    assert len(runner.messages) == 1 and runner.messages[0][0] == 'warning'
    assert 'train_dataloader.dataset.withheld_labels' in runner.messages[0][1]
