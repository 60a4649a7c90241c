"""A third task that only its module knows: image attributes (mtssl_mm/tasks/attributes/) on the BDD100K fixture.

The converter writes the attributes beside the det/seg annotation files; the unchanged dataset, transforms,
sampler, semi-supervised wrapper, runner and evaluator train and evaluate det + seg + attr from the config alone.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.runner import Runner

import mtssl_mm  # noqa: F401
from mtssl_mm.tasks import TASK_DATA
from mtssl_mm.tasks.task_loss import normalise_globally
from fixtures import REPO, tiny_cfg
from official_fixtures import A, B, C, D, E, bdd_det_frames, build_dataset, load_tool, write_bdd100k

bdd = load_tool('dataset_converters/bdd100k.py')
ATTRS = dict(weather=6, scene=6, timeofday=3)
# per frame: the attributes written into det_{train,val}.json (B has an undefined weather, C has no labels list)
FRAME_ATTRS = {
    A: dict(weather='rainy', scene='highway', timeofday='night'),
    B: dict(weather='undefined', scene='city street', timeofday='daytime'),
    C: dict(weather='snowy', scene='tunnel', timeofday='dawn/dusk')
}


def img100(split, name):
    return f'images/100k/{split}/{name}.jpg'


def write_tree(root):
    write_bdd100k(root)
    frames = bdd_det_frames()
    for frame in frames['train']:
        frame['attributes'] = dict(FRAME_ATTRS[frame['name'][:-4]])
    for split, fs in frames.items():
        with open(osp.join(root, 'labels', 'det_20', f'det_{split}.json'), 'w') as f:
            json.dump(fs, f)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bdd100k'))
    write_tree(root)
    return root, bdd.convert(root)


def three_tasks(root, key='train_dataloader', **overrides):
    split = 'train' if key == 'train_dataloader' else 'val'
    return build_dataset(
        'bdd100k_multitask.py',
        key,
        root,
        tasks=('det', 'seg', 'attr'),
        task_ann_files=dict(attr=f'annotations/attributes_{split}.json'),
        **overrides)


def test_converter_writes_the_attributes_of_every_detection_frame(converted):
    root, summary = converted
    with open(osp.join(root, 'annotations', 'attributes_train.json')) as f:
        ann = json.load(f)
    assert ann['metainfo']['attr_classes'] == bdd.ATTR_CLASSES
    got = {e['img_path']: e['attributes'] for e in ann['data_list']}
    assert got == {img100('train', n): FRAME_ATTRS[n] for n in (A, B, C)}  # C: attributes without a labels list
    assert summary['train']['attr'] == 3 and summary['val']['attr'] == 2
    assert 'images with attributes (task attr): 3' in bdd.format_summary(summary)
    with open(osp.join(root, 'annotations', 'train.json')) as f:  # the det/seg file is unchanged
        assert all('attributes' not in e and 'attr' not in e['labeled_tasks'] for e in json.load(f)['data_list'])


def test_unknown_attribute_value_names_the_file_and_the_frame(tmp_path):
    root = str(tmp_path / 'bdd')
    write_bdd100k(root)
    frames = bdd_det_frames()['train']
    frames[0]['attributes'] = dict(weather='hail')
    with open(osp.join(root, 'labels', 'det_20', 'det_train.json'), 'w') as f:
        json.dump(frames, f)
    with pytest.raises(ValueError, match=rf"det_train.json: frame {A}.jpg: unknown weather 'hail'"):
        bdd.convert(root)


def test_dataset_reads_the_attribute_file_and_packs_gt_attributes(converted):
    root, _ = converted
    ds = three_tasks(root, filter_cfg=None)
    assert ds.metainfo['tasks'] == ('det', 'seg', 'attr')
    by_path = {osp.relpath(ds.get_data_info(i)['img_path'], root): i for i in range(len(ds))}
    assert ds.labeled_tasks(by_path[img100('train', A)]) == ('det', 'attr')
    assert ds.labeled_tasks(by_path[img100('train', B)]) == ('det', 'seg', 'attr')
    assert ds.labeled_tasks(by_path[img100('train', C)]) == ('attr', )
    assert ds.labeled_tasks(by_path[img100('train', D)]) == ()
    classes = bdd.ATTR_CLASSES
    sample = ds[by_path[img100('train', B)]]['data_samples']
    assert sample.gt_attributes.tolist() == [-1, classes['scene'].index('city street'), 0]  # undefined -> -1
    unlabeled = ds[by_path[img100('train', D)]]['data_samples']
    assert unlabeled.gt_attributes.tolist() == [-1, -1, -1]
    # a two-task experiment on the same files never sees the attributes
    assert 'gt_attributes' not in build_dataset('bdd100k_multitask.py', 'train_dataloader', root)[0]['data_samples']


def test_identity_warp_strong_pseudo_label_equals_the_weak_one():
    """Invariance, not equivariance: whatever the geometry of the strong view, its target is the weak view's."""
    torch.manual_seed(0)  # the head's initialisation: unseeded, 1 draw in 20 gave no (or only) confident samples
    task = MODELS.build(dict(type='AttributesTask', name='attr', attributes=ATTRS, in_channels=8))
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(5, 8, 4, 4, generator=g) * 20]
    weak = task.pseudo_label(task(feats), [DetDataSample() for _ in range(5)])
    assert ((weak == -1) | (weak >= 0)).all() and (weak >= 0).any() and (weak == -1).any()
    for _ in range(4):
        angle, scale = torch.rand(2, generator=g)
        m = torch.eye(3).repeat(5, 1, 1)
        m[:, :2, :2] = torch.tensor([[torch.cos(angle), -torch.sin(angle)], [torch.sin(angle), torch.cos(angle)]])
        m[:, :2, :2] *= 0.5 + scale
        m[:, 0, 2] = torch.randn(5, generator=g) * 30
        m[:, 1, 1] *= -1  # and a flip
        assert torch.equal(task.warp_pseudo_labels(weak, m, (64, 64)), weak)


def test_unsup_loss_is_fixmatchs_mean_over_the_unlabeled_batch():
    """Below-threshold samples add 0 to the sums and 1 each to the normaliser (over the global batch)."""
    task = MODELS.build(
        dict(type='AttributesTask', name='attr', attributes=dict(weather=3), in_channels=2, pseudo_score_thr=0.9))
    logits = {'weather': torch.tensor([[9.0, 0.0, 0.0], [0.2, 0.1, 0.0], [0.0, 0.0, 8.0], [0.0, 0.1, 0.0]])}
    pseudo = task.pseudo_label(logits, [None] * 4)
    assert pseudo[:, 0].tolist() == [0, -1, 2, -1]
    student = {'weather': torch.tensor([[1.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])}
    term = task.unsup_loss(student, [None] * 4, pseudo)
    loss = normalise_globally(dict(u=term))['u']['loss_weather']
    ce = torch.nn.functional.cross_entropy
    expected = (ce(student['weather'][:1], torch.tensor([0])) + ce(student['weather'][2:3], torch.tensor([2]))) / 4
    torch.testing.assert_close(loss, expected)
    assert task.pseudo_stats(pseudo) == dict(pseudo_attr_ratio=(2.0, 4.0))  # logged: 2 / 4
    assert task.pseudo_stats(None) == dict(pseudo_attr_ratio=(0.0, 0.0))


def test_evaluator_reports_three_metrics_and_their_geometric_mean():
    from mmdet.evaluation import CocoMetric  # noqa: F401  (registered)
    meta = dict(
        classes=('car', ),
        seg_classes=('road', 'sky'),
        seg_palette=[(0, 0, 0)] * 2,
        attr_classes=dict(weather=['a', 'b'], scene=['x']),
        tasks=('det', 'seg', 'attr'))
    metric = METRICS.build(dict(type='MultiTaskMetric', classwise=False))
    metric.dataset_meta = meta
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    seg = torch.tensor([[[0, 1], [1, 1]]])
    samples = []
    for i, (gt_attr, pred_attr) in enumerate([([0, 0], [0, 0]), ([1, -1], [0, 0]), ([1, 0], [1, 0])]):
        samples.append(
            dict(
                img_id=i,
                ori_shape=(20, 20),
                labeled_tasks=('det', 'seg', 'attr'),
                instances=[dict(bbox=[0.0, 0.0, 10.0, 10.0], bbox_label=0, ignore_flag=0)],
                pred_instances=dict(bboxes=box, scores=torch.tensor([0.9]), labels=torch.tensor([0])),
                gt_sem_seg=dict(sem_seg=seg),
                pred_sem_seg=dict(sem_seg=seg.clone() if i else torch.zeros_like(seg)),
                gt_attributes=torch.tensor(gt_attr),
                pred_attributes=torch.tensor(pred_attr)))
    metric.process({}, samples)
    out = metric.evaluate(3)
    # weather: 2 of 3 right; F1(a) = 2*1/(1+2) = 2/3, F1(b) = 2*1/(2+1) = 2/3; scene: 2 defined, both right
    assert out['attr/weather_accuracy'] == pytest.approx(2 / 3) and out['attr/weather_macro_f1'] == pytest.approx(2 / 3)
    assert out['attr/scene_accuracy'] == 1.0 and out['attr/macro_f1'] == pytest.approx((2 / 3 + 1) / 2)
    assert out['det/bbox_mAP'] == pytest.approx(1.0) and 0 < out['seg/mIoU'] < 100
    gmean = (out['det/bbox_mAP'] * out['seg/mIoU'] / 100 * out['attr/macro_f1'])**(1 / 3)
    assert out['multitask/gmean'] == pytest.approx(gmean)
    assert TASK_DATA['attr'].main_key == ('macro_f1', 1.0)


def bdd_tiny_cfg(root, work, config):
    """The tiny CPU model with the three tasks on the BDD100K fixture (the 3-task leaf config's additions)."""
    cfg = tiny_cfg(root, work, config=config)
    three = Config.fromfile(osp.join(REPO, 'configs', 'bdd100k', 'densefixmatch_explicit_3tasks.py'))
    bdd_base = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets', 'bdd100k_multitask.py'))
    detector = cfg.model.detector if 'detector' in cfg.model else cfg.model
    detector.tasks.attr = dict(three.model.detector.tasks.attr, in_channels=512)  # ResNet-18's C5
    detector.tasks.det.head.num_classes = 10
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[key].dataset
        ds.update(
            metainfo=bdd_base.metainfo,
            tasks=three[key].dataset.tasks,
            task_ann_files=three[key].dataset.task_ann_files)
    cfg.train_dataloader.dataset.filter_cfg = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3, val_interval=3)
    cfg.default_hooks.checkpoint = None
    cfg.randomness = dict(seed=0)
    return cfg


@pytest.mark.parametrize('sampling', ['explicit', 'implicit'])
def test_three_tasks_train_and_evaluate_through_the_unchanged_wrapper(converted, tmp_path, sampling):
    root, _ = converted
    cfg = bdd_tiny_cfg(root, str(tmp_path / 'work'), f'{REPO}/configs/demo/densefixmatch_tiny.py')
    if sampling == 'explicit':  # A {det, attr}, B {det, seg, attr}, C {attr}, E {seg}, D and F {}
        cfg.train_dataloader.sampler = dict(type='ExplicitSampler', batch_size=4, labeled='any')
    else:  # a split: A {det} (its attributes withheld, measured), B all three, C {attr}, E {seg}
        with open(osp.join(root, 'split3.json'), 'w') as f:
            json.dump(
                dict(
                    labeled=dict(
                        det=[img100('train', A), img100('train', B)],
                        seg=[img100('train', B), f'images/10k/train/{E}.jpg'],
                        attr=[img100('train', B), img100('train', C)])), f)
        cfg.train_dataloader.dataset.update(split_file=osp.join(root, 'split3.json'), withheld_labels=True)
        cfg.custom_hooks.append(dict(type='PseudoLabelQualityHook', interval=1))
    runner = Runner.from_cfg(cfg)
    seen, seen_losses, quality = [], {}, []
    orig = runner.model.loss

    def loss(inputs, samples):
        seen.extend(s.labeled_tasks for s in samples)
        losses = orig(inputs, samples)
        seen_losses.update(losses)
        quality.append(runner.model.pseudo_quality_counts)
        return losses

    runner.model.loss = loss
    runner.train()
    kinds = {('det', 'attr'), ('det', 'seg', 'attr'), ('attr', ), ('seg', ), ()} if sampling == 'explicit' else \
        {('det', ), ('det', 'seg', 'attr'), ('attr', ), ('seg', ), ()}
    assert kinds <= set(seen), set(seen)
    for key in ('attr.sup.loss_weather', 'attr.unsup.loss_timeofday', 'attr.lambda', 'attr.pseudo_attr_ratio',
                'det.sup.loss_cls', 'seg.unsup.loss_ce'):
        assert key in seen_losses, key
        assert torch.isfinite(torch.as_tensor(seen_losses[key], dtype=torch.float32).sum()), key
    metrics = runner.val_loop.run()
    for key in ('det/bbox_mAP', 'seg/mIoU', 'attr/macro_f1', 'attr/weather_accuracy', 'multitask/gmean'):
        assert key in metrics, key
    assert metrics['attr/num_images'] == metrics['det/num_images'] == 2 and metrics['seg/num_images'] == 1
    expected = (max(metrics['det/bbox_mAP'], 0) * metrics['seg/mIoU'] / 100 * metrics['attr/macro_f1'])**(1 / 3)
    assert metrics['multitask/gmean'] == pytest.approx(expected)
    if sampling == 'implicit':  # A's withheld attributes measure the pseudo-labels (never a loss)
        attr = [q['attr'] for q in quality]
        assert sum(int(c['num_images']) for c in attr) >= 1 and sum(int(c['defined'].sum()) for c in attr) >= 3


def test_inferencer_writes_the_attributes_of_images_without_labels(converted, tmp_path):
    from mtssl_mm.apis import MultiTaskInferencer
    root, _ = converted
    cfg = bdd_tiny_cfg(root, str(tmp_path / 'work'), f'{REPO}/configs/demo/supervised_tiny.py')
    cfg.test_dataloader.dataset.metainfo = dict(cfg.test_dataloader.dataset.metainfo, attr_classes=bdd.ATTR_CLASSES)
    inferencer = MultiTaskInferencer(cfg, None, device='cpu', show_progress=False)
    (result, ) = inferencer(osp.join(root, img100('train', A)))['predictions']
    assert result['tasks'] == ['det', 'seg', 'attr'] and set(result['attributes']) == set(ATTRS)
    for attr, pred in result['attributes'].items():
        assert pred['label'] in bdd.ATTR_CLASSES[attr] and 0 < pred['score'] <= 1


def test_the_three_task_leaf_config_only_adds_the_task():
    path = osp.join(REPO, 'configs', 'bdd100k', 'densefixmatch_explicit_3tasks.py')
    assert len(open(path).read().splitlines()) <= 15
    three, two = (
        Config.fromfile(osp.join(REPO, 'configs', 'bdd100k', f'densefixmatch_explicit{s}.py')) for s in ('_3tasks', ''))
    assert list(three.model.detector.tasks) == ['det', 'seg', 'attr']
    assert three.model.detector.tasks.det == two.model.detector.tasks.det
    assert three.train_dataloader.sampler == two.train_dataloader.sampler and three.val_evaluator == two.val_evaluator
    assert np.isclose(
        three.model.detector.tasks.attr.pseudo_score_thr
        if 'pseudo_score_thr' in three.model.detector.tasks.attr else 0.95, 0.95)
