"""make demo: the synthetic Cityscapes-format generator, the demo configs, and tools/demo.py --quick end to end."""
import filecmp
import glob
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.annotation import Annotation
from cityscapesscripts.helpers.labels import id2label
from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
from cityscapesscripts.preparation.json2labelImg import createLabelImage
from PIL import Image

from fixtures import REPO
from official_fixtures import load_tool

sys.path.insert(0, osp.join(REPO, 'tools'))  # the demo's data generator lives with the tools, not in the package
from synthetic_cityscapes import write_synthetic_cityscapes  # noqa: E402

STEM = re.compile(r'^(?P<city>[a-z]+)_(?P<seq>\d{6})_(?P<frame>\d{6})$')
GT_SUFFIXES = ('_gtFine_labelIds.png', '_gtFine_instanceIds.png', '_gtFine_polygons.json', '_gtFine_color.png')


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic') / 'cityscapes')
    summary = write_synthetic_cityscapes(root, num_train=12, num_val=4, seed=0)
    return root, summary


def stems(root, split):
    """(city, stem) of every image of ``split``, checking the official file layout on the way."""
    out = []
    for path in sorted(glob.glob(osp.join(root, 'leftImg8bit', split, '*', '*'))):
        city = osp.basename(osp.dirname(path))
        name = osp.basename(path)
        assert name.endswith('_leftImg8bit.png'), name
        stem = name[:-len('_leftImg8bit.png')]
        m = STEM.match(stem)
        assert m and m['city'] == city, f'{name} does not follow <city>_<seq:06d>_<frame:06d>_leftImg8bit.png'
        for suffix in GT_SUFFIXES:
            assert osp.isfile(osp.join(root, 'gtFine', split, city, stem + suffix)), stem + suffix
        out.append((city, stem))
    return out


def test_generator_writes_the_official_cityscapes_format(synthetic_root):
    root, summary = synthetic_root
    assert [len(stems(root, s)) for s in ('train', 'val')] == [12, 4]
    assert summary['train']['images'] == 12 and summary['train']['instances'] > 12
    crowd_seen, classes_seen, split_instances = 0, set(), 0
    for split in ('train', 'val'):
        for city, stem in stems(root, split):
            gt = osp.join(root, 'gtFine', split, city, stem + '_gtFine')
            img = cv2.imread(
                osp.join(root, 'leftImg8bit', split, city, stem + '_leftImg8bit.png'), cv2.IMREAD_UNCHANGED)
            assert img.dtype == np.uint8 and img.shape == (128, 256, 3)
            with Image.open(gt + '_labelIds.png') as im:
                assert im.mode == 'L'
                label = np.array(im)
            inst = cv2.imread(gt + '_instanceIds.png', cv2.IMREAD_UNCHANGED)
            assert inst.dtype == np.uint16, 'instanceIds must be a 16-bit PNG'
            assert label.shape == inst.shape == img.shape[:2]
            # instance pixels carry their class (id * 1000 + k), every other pixel the bare label id
            is_inst = inst >= 1000
            assert (inst[is_inst] // 1000 == label[is_inst]).all()
            assert (inst[~is_inst] == label[~is_inst]).all()
            for cid in np.unique(inst[is_inst] // 1000):
                assert id2label[int(cid)].hasInstances
            classes_seen.update(id2label[int(i)].name for i in np.unique(label))
            crowd_seen += int(np.isin(inst, [lb.id for lb in id2label.values() if lb.hasInstances]).any())
            # an instance split into pieces by an occluder (several connected components of one value)
            for v in np.unique(inst[is_inst]):
                n, _ = cv2.connectedComponents((inst == v).astype(np.uint8), connectivity=8)
                split_instances += int(n - 1 > 1)
            # the polygons parse with cityscapesscripts' reader, and its own rasterisers give the maps exactly
            ann = Annotation()
            ann.fromJsonFile(gt + '_polygons.json')
            assert (ann.imgHeight, ann.imgWidth) == img.shape[:2] and len(ann.objects) > 5
            assert all(len(o.polygon) >= 3 for o in ann.objects)
            np.testing.assert_array_equal(np.asarray(createLabelImage(ann, 'ids')), label)
            np.testing.assert_array_equal(np.asarray(createInstanceImage(ann, 'ids')), inst)
    assert {'road', 'sidewalk', 'building', 'vegetation', 'sky', 'person', 'car'} <= classes_seen
    assert len(classes_seen & {'rider', 'truck', 'bus', 'motorcycle', 'bicycle'}) >= 3
    assert crowd_seen >= 1, 'no crowd group (bare id of an instance class) in any image'
    assert split_instances >= 1, 'no instance split by occlusion'


def test_generator_output_is_seeded(synthetic_root, tmp_path):
    root, _ = synthetic_root
    again = str(tmp_path / 'again')
    write_synthetic_cityscapes(again, num_train=12, num_val=4, seed=0, nproc=2)  # workers do not change it
    files = sorted(osp.relpath(p, root) for p in glob.glob(osp.join(root, '*', '*', '*', '*')))
    assert files == sorted(osp.relpath(p, again) for p in glob.glob(osp.join(again, '*', '*', '*', '*')))
    match, mismatch, errors = filecmp.cmpfiles(root, again, files, shallow=False)
    assert not mismatch and not errors
    other = str(tmp_path / 'other')
    write_synthetic_cityscapes(other, num_train=2, num_val=0, seed=1)
    a = osp.join('leftImg8bit', 'train', *stems(root, 'train')[0]) + '_leftImg8bit.png'
    assert not filecmp.cmp(osp.join(root, a), osp.join(other, a), shallow=False), 'another seed, same image'


def test_simple_scenes_and_a_labeled_test_split(tmp_path):
    """scene='simple' (make demo): the 7 classes of compose_simple only; a labeled test split that the converter
    turns into test.json with --splits train val test."""
    root = str(tmp_path / 'cityscapes')
    summary = write_synthetic_cityscapes(root, num_train=3, num_val=1, num_test=2, seed=0, scene='simple')
    assert summary['test']['images'] == 2
    assert [len(stems(root, s)) for s in ('train', 'val', 'test')] == [3, 1, 2]
    names = set()
    for split in ('train', 'val', 'test'):
        for city, stem in stems(root, split):
            with Image.open(osp.join(root, 'gtFine', split, city, stem + '_gtFine_labelIds.png')) as im:
                names.update(id2label[int(i)].name for i in np.unique(np.array(im)))
    assert {'road', 'sidewalk', 'building', 'sky', 'car'
            } <= names <= {'sky', 'building', 'vegetation', 'sidewalk', 'road', 'car', 'person'}, names
    converted = load_tool('dataset_converters/cityscapes.py').convert(root, splits=('train', 'val', 'test'))
    assert converted['test']['images'] == 2 and sum(converted['test']['boxes'].values()) >= 2
    with open(converted['files']['test']) as f:
        entries = json.load(f)['data_list']
    assert len(entries) == 2 and all(e['img_path'].startswith('leftImg8bit/test/') for e in entries)
    with pytest.raises(ValueError, match='scene must be one of'):
        write_synthetic_cityscapes(root, num_train=1, num_val=0, scene='busy')


def inside(inner, outer):
    return inner[0] >= outer[0] and inner[1] >= outer[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def test_simple_scenes_send_what_real_cityscapes_sends(tmp_path):
    """The demo's scenes hold what the converter and the box assigner meet in real Cityscapes: crowd groups (bare
    class ids in _instanceIds.png -> ignore boxes) that labeled cars overlap, and persons in front of cars (a box
    inside a box, the car partly hidden)."""
    root = str(tmp_path / 'cityscapes')
    summary = write_synthetic_cityscapes(root, num_train=16, num_val=0, seed=0, scene='simple')
    assert summary['train']['crowd_groups'] >= 3
    converted = load_tool('dataset_converters/cityscapes.py').convert(root, splits=('train', ))
    with open(converted['files']['train']) as f:
        entries = json.load(f)['data_list']
    nested = crowd_over_car = 0
    for e in entries:
        boxes = [i for i in e['instances'] if not i['ignore_flag']]
        ignore = [i['bbox'] for i in e['instances'] if i['ignore_flag']]
        cars = [b['bbox'] for b in boxes if b['label'] == 'car']
        nested += any(inside(p['bbox'], c) for p in boxes if p['label'] == 'person' for c in cars)
        crowd_over_car += any(
            min(c[2], g[2]) > max(c[0], g[0]) and min(c[3], g[3]) > max(c[1], g[1]) for c in cars for g in ignore)
    assert sum(converted['train']['ignore'].values()) == summary['train']['crowd_groups']
    assert nested >= 2, 'no person box inside a car box'
    assert crowd_over_car >= 1, 'no labeled car overlapping an ignore region'


def test_converter_and_split_read_the_generated_tree(synthetic_root, tmp_path):
    root, _ = synthetic_root
    out = str(tmp_path / 'annotations')
    summary = load_tool('dataset_converters/cityscapes.py').convert(root, out)
    train = summary['train']
    assert train['images'] == 12 and sum(train['boxes'].values()) > 12
    assert len([c for c, n in train['boxes'].items() if n]) >= 4
    assert sum(train['ignore'].values()) + sum(summary['val']['ignore'].values()) >= 1  # crowd groups
    split = load_tool('make_partial_split.py').main([
        osp.join(out, 'train.json'), '--scenario', 'd', '--n-det', '1/2', '--n-seg', '1/4', '-o',
        str(tmp_path / 'd.json')
    ])
    assert len(split['labeled']['det']) == 6 and set(split['labeled']['seg']) <= set(split['labeled']['det'])


# ---------------------------------------------------------------------------------------------- configs
def flat(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


# what the demo configs may change in the real ones: size only (and, for training from random initialisation, the
# learning rate and gradient clipping of configs/demo/supervised_tiny.py), logging, validation and checkpoint intervals
# and the hooks' measurement intervals
SIZE_KEYS = ('backbone.depth', 'backbone.base_channels', 'backbone.init_cfg', 'tasks.det.neck.in_channels',
             'tasks.det.neck.out_channels', 'tasks.det.head.in_channels', 'tasks.det.head.feat_channels',
             'tasks.det.head.stacked_convs', 'tasks.det.head.anchor_generator.octave_base_scale',
             'tasks.seg.head.in_channels', 'tasks.seg.head.channels', 'tasks.seg.head.c1_in_channels',
             'tasks.seg.head.c1_channels')
OTHER_KEYS = ('train_pipeline', 'train_dataloader.batch_size', 'train_dataloader.num_workers',
              'train_dataloader.persistent_workers', 'train_dataloader.pin_memory',
              'train_dataloader.sampler.batch_size', 'train_dataloader.dataset.pipeline', 'val_dataloader.batch_size',
              'val_dataloader.num_workers', 'val_dataloader.persistent_workers', 'test_dataloader.batch_size',
              'test_dataloader.num_workers', 'test_dataloader.persistent_workers', 'max_iters', 'train_cfg.max_iters',
              'train_cfg.val_interval', 'param_scheduler', 'optim_wrapper.optimizer.lr', 'optim_wrapper.clip_grad',
              'default_hooks.logger', 'default_hooks.checkpoint', 'default_hooks.visualization.draw',
              'log_processor.window_size', 'env_cfg.mp_cfg.opencv_num_threads', 'filename', 'custom_hooks', 'demo_'
              )  # the size block's variables (configs/_base_/demo_size.py)
DEMOS = {
    'supervised': ('supervised_partial', 'model.'),
    'fixmatch_explicit': ('fixmatch_explicit', 'model.detector.'),
    'densefixmatch_explicit': ('densefixmatch_explicit', 'model.detector.')
}


def load(path):
    from mmengine.config import Config
    return Config.fromfile(osp.join(REPO, 'configs', path)).to_dict()


@pytest.mark.parametrize('demo', list(DEMOS))
def test_demo_config_changes_only_size(demo):
    real_name, model_prefix = DEMOS[demo]
    real, small = flat(load(f'cityscapes_lowdata/{real_name}.py')), flat(load(f'demo/{demo}.py'))
    allowed = tuple(model_prefix + k for k in SIZE_KEYS) + OTHER_KEYS
    if model_prefix == 'model.detector.':  # the wrapper keeps its own copy of the detector's preprocessor
        allowed += tuple('model.' + k for k in SIZE_KEYS)
    changed = {k for k in real.keys() | small.keys() if real.get(k, '<absent>') != small.get(k, '<absent>')}
    assert not {k for k in changed if not k.startswith(allowed)}, 'demo config changes more than its size'


def test_demo_configs_compare_the_methods_fairly():
    sup, fm, dfm = (load(f'demo/{d}.py') for d in DEMOS)
    assert fm['model']['detector'] == sup['model'] == dfm['model']['detector']
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'default_hooks'):
        assert fm[key] == sup[key] == dfm[key], key
    # the weak view: the supervised and Dense FixMatch pipelines; FixMatch* without the flip (Table 10)
    assert dfm['train_dataloader']['dataset']['pipeline'] == sup['train_dataloader']['dataset']['pipeline']
    assert fm['train_dataloader']['dataset']['pipeline'] == [
        s for s in sup['train_dataloader']['dataset']['pipeline'] if s['type'] != 'RandomFlip'
    ]
    for key in ('num_workers', 'persistent_workers', 'pin_memory'):  # the same loader, on the same machine
        assert fm['train_dataloader'][key] == sup['train_dataloader'][key], key
    # the semi-supervised batches: the supervised batch of labeled samples + as many others
    assert fm['train_dataloader']['batch_size'] == 2 * sup['train_dataloader']['batch_size']
    assert fm['train_dataloader']['sampler'] == dict(type='ExplicitSampler', batch_size=4, labeled='any')
    assert sup['train_dataloader']['dataset']['filter_cfg'] == dict(labeled='any')
    assert fm['train_dataloader']['dataset']['filter_cfg'] is None
    assert fm['model']['strong_aug']['geometric'] is False and dfm['model']['strong_aug']['geometric'] is True
    assert {k: v for k, v in fm['model'].items() if k != 'strong_aug'} == \
        {k: v for k, v in dfm['model'].items() if k != 'strong_aug'}
    # the method's hooks are the real config's, only the measurement / drawing intervals change
    real = load('cityscapes_lowdata/fixmatch_explicit.py')['custom_hooks']
    no_interval = [{
        k: v
        for k, v in h.items() if h['type'] not in ('PseudoLabelQualityHook', 'PseudoLabelVisHook') or k != 'interval'
    } for h in real]
    for demo in (fm, dfm):
        assert [{
            k: v
            for k, v in h.items()
            if h['type'] not in ('PseudoLabelQualityHook', 'PseudoLabelVisHook') or k != 'interval'
        } for h in demo['custom_hooks']] == no_interval
    assert fm['train_dataloader']['dataset']['withheld_labels'] is True


def test_demo_finds_the_hooks_it_resets_by_type():
    """tools/demo.py sets the pseudo-label hooks' intervals through --cfg-options, which addresses a list entry by
    position: the position is the one of the hook's type in the config; a config without it fails naming both."""
    from mmengine.config import Config
    demo = load_tool('demo.py')
    for config in ('configs/demo/fixmatch_explicit.py', 'configs/demo/densefixmatch_explicit.py'):
        hooks = Config.fromfile(osp.join(REPO, config)).custom_hooks
        for hook_type, value in (('PseudoLabelQualityHook', 3), ('PseudoLabelVisHook', 8)):
            option = demo.hook_option(config, hook_type, 'interval', value)
            index = int(re.fullmatch(r'custom_hooks\.(\d+)\.interval=' + str(value), option)[1])
            assert hooks[index].type == hook_type, (config, option)
    with pytest.raises(KeyError, match='configs/demo/supervised.py: custom_hooks has no PseudoLabelQualityHook'):
        demo.hook_option('configs/demo/supervised.py', 'PseudoLabelQualityHook', 'interval', 1)


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope='module')
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo') / 'out'
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    # (its duration is reported in results.json, not asserted: speed goals live in tools/benchmark.py and the
    # README, and the suite runs it beside other tests on 2 cores)
    proc = subprocess.run(
        [sys.executable,
         osp.join(REPO, 'tools', 'demo.py'), '--quick', '--out',
         str(out), '--device', 'cpu'],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, proc


def test_quick_demo_end_to_end(quick_demo):
    out, proc = quick_demo
    for name in ('results.md', 'results.json', 'results.png', 'qualitative.png', 'pseudo_labels.png'):
        assert (out / name).is_file(), name
    res = json.loads((out / 'results.json').read_text())
    meta = res['meta']
    assert meta['quick'] is True and meta['seeds'] == [0]
    assert list(res['methods']) == ['supervised', 'fixmatch_explicit', 'densefixmatch_explicit']
    init = meta['init']['0']
    assert (out / osp.relpath(init['checkpoint'], str(out))).is_file() and 'tools/train.py' in init['command']
    for key, r in res['methods'].items():
        assert len(r['runs']) == 1
        for metric in ('det/bbox_mAP', 'seg/mIoU', 'multitask/gmean'):
            assert math.isfinite(r[metric]) and r[metric] >= 0 and r[metric + '_std'] == 0, (key, metric)
        run = r['runs'][0]
        # every method starts from its seed's initialisation; the tested checkpoint is the best on val
        assert f'load_from={init["checkpoint"]}' in run['command'] and 'tools/train.py' in run['command']
        assert 'tools/test.py' in run['test_command'] and 'annotations/test.json' in run['test_command']
        assert osp.basename(run['checkpoint']) == f'best_multitask_gmean_iter_{run["best_iter"]}.pth'
        assert (out / run['checkpoint']).is_file() and run['best_iter'] in {v['step'] for v in run['val_curve']}
        assert [v['step'] for v in run['val_curve']] == [2, 4], 'validations at iterations 2 and 4'
        best_val = max(v['multitask/gmean'] for v in run['val_curve'])
        assert [v['multitask/gmean'] for v in run['val_curve'] if v['step'] == run['best_iter']][0] == best_val
        # the reported numbers are those of tools/test.py's JSON, on the test images
        (test_json, ) = glob.glob(str(out / run['work_dir'] / 'test' / '*' / '*.json'))
        written = json.loads(open(test_json).read())
        assert {
            k: written[k]
            for k in run['test']
        } == run['test'] and r['multitask/gmean'] == run['test']['multitask/gmean']
        # Table 7's losses on the labeled test images, in tools/test.py's JSON
        for loss in ('det/val_loss_cls', 'det/val_loss_bbox', 'seg/val_loss_ce'):
            assert math.isfinite(written[loss]) and written[loss] > 0, (key, loss)
    md = (out / 'results.md').read_text()
    assert 'smoke test' in md and md.count('| FixMatch* (explicit) |') == 1 and '±' in md
    # paired differences to the supervised baseline, per seed
    assert 'paired' not in res['methods']['supervised']
    for key in ('fixmatch_explicit', 'densefixmatch_explicit'):
        d = res['methods'][key]['paired']['multitask/gmean']
        assert d['diffs'] == pytest.approx([
            res['methods'][key]['runs'][0]['test']['multitask/gmean'] -
            res['methods']['supervised']['runs'][0]['test']['multitask/gmean']
        ])
    assert '| FixMatch* (explicit) − supervised |' in md and 'Paired differences' in md
    assert 'FixMatch* (explicit)' in proc.stdout and 'gmean' in proc.stdout  # the printed table
    chart, grid, curves = (cv2.imread(str(out / n)) for n in ('results.png', 'qualitative.png', 'pseudo_labels.png'))
    assert chart is not None and chart.shape[0] > 200 and curves is not None and curves.shape[1] > 800
    # ground truth + three methods side by side, one row per shown test image
    assert grid is not None and grid.shape[1] >= 4 * 2 * 256 and grid.shape[0] >= 2 * 128
    # the path went through the official format, the real converter (with a test split) and a scenario (d) split
    data = out / 'data' / 'cityscapes'
    assert glob.glob(str(data / 'gtFine' / 'test' / '*' / '*_gtFine_instanceIds.png'))
    for split in ('train', 'val', 'test'):
        assert (data / 'annotations' / f'{split}.json').is_file(), split
    assert len(glob.glob(str(data / 'splits' / 'd_*_seed0.json'))) == 1


def test_quick_demo_pseudo_label_quality_reaches_tensorboard(quick_demo):
    """The semi-supervised runs write the pseudo-label quality scalars and pictures (PseudoLabelQualityHook,
    PseudoLabelVisHook) and the validation losses to scalars.json and the TensorBoard event file; the curves come
    from scalars.json."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out, _ = quick_demo
    res = json.loads((out / 'results.json').read_text())
    for key in ('fixmatch_explicit', 'densefixmatch_explicit'):
        run = res['methods'][key]['runs'][0]
        vis_dir = osp.dirname(str(out / run['scalars']))
        (event_file, ) = glob.glob(osp.join(vis_dir, 'events.out.tfevents.*'))
        acc = EventAccumulator(event_file, size_guidance={'scalars': 0, 'images': 0})
        acc.Reload()
        tags = set(acc.Tags()['scalars'])
        for tag in (
                'seg.pl/acc',
                'seg.pl/mIoU',
                'seg.pl/in_view',
                'det.pl/boxes_per_img@0.5',
                # the validation losses of Table 7, at every validation
                'det/val_loss_cls',
                'det/val_loss_bbox',
                'seg/val_loss_ce'):
            assert tag in tags, (key, tag, sorted(tags))
            assert acc.Scalars(tag), (key, tag)
        assert any(t.startswith('pseudo_labels_') for t in acc.Tags()['images']), acc.Tags()['images']
        assert glob.glob(osp.join(vis_dir, 'vis_image', 'pseudo_labels_*.png'))
    curves = res['meta']['pseudo_label_curves']
    assert set(curves) == {'FixMatch* (explicit)', 'Dense FixMatch (explicit)'}
    assert all('seg.pl/acc' in c for c in curves.values())


def test_curves_refuse_runs_without_quality_scalars(tmp_path):
    """A semi-supervised run without the pseudo-label scalars fails the report, naming the file."""
    report = load_tool('demo_report.py')
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'scalars.json').write_text(json.dumps({'loss': 1.0, 'step': 1}) + '\n')
    with pytest.raises(KeyError, match='scalars.json holds no'):
        report.pseudo_label_curves(
            str(tmp_path), {'fixmatch_explicit': [dict(scalars='run/scalars.json')]},
            {'fixmatch_explicit': 'FixMatch*'})


def test_summary_is_mean_and_population_std():
    report = load_tool('demo_report.py')
    runs = [dict(test={'det/bbox_mAP': a, 'seg/mIoU': 10 * a, 'multitask/gmean': a / 2}) for a in (0.1, 0.3)]
    s = report.summarise(runs)
    assert s['det/bbox_mAP'] == pytest.approx(0.2) and s['det/bbox_mAP_std'] == pytest.approx(0.1)
    assert s['seg/mIoU'] == pytest.approx(2.0) and s['multitask/gmean_std'] == pytest.approx(0.05)


def test_paired_differences_are_per_seed_against_the_baseline():
    """The demo's comparison: per seed method - supervised (same split, initialisation, training seed), then mean,
    population std and the seeds that improve; a shift shared by all methods of a seed cancels."""
    report = load_tool('demo_report.py')

    def runs(values):
        return [
            dict(seed=s, test={
                'det/bbox_mAP': v,
                'seg/mIoU': 100 * v,
                'multitask/gmean': v
            }) for s, v in enumerate(values)
        ]

    results = dict(
        supervised=dict(name='sup', runs=runs([0.10, 0.30, 0.20])),
        fixmatch_explicit=dict(name='fm', runs=runs([0.12, 0.31, 0.19])))
    d = report.paired(results)['fixmatch_explicit']['det/bbox_mAP']
    assert d['diffs'] == pytest.approx([0.02, 0.01, -0.01])
    assert d['mean'] == pytest.approx(0.02 / 3) and d['std'] == pytest.approx(np.std([0.02, 0.01, -0.01]))
    assert (d['improved'], d['seeds']) == (2, 3)
    assert report.paired(results)['fixmatch_explicit']['seg/mIoU']['mean'] == pytest.approx(2 / 3)
    row = report.paired_line('fm', report.paired(results)['fixmatch_explicit'])
    assert row.startswith('| fm − supervised | +0.0067 ± ') and '(2/3)' in row


@pytest.fixture(scope='module')
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp('study') / 'out'
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'demo.py'), '--quick', '--study', 'label-count', '--out',
        str(out), '--device', 'cpu'
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


def test_quick_label_count_study(quick_study):
    """tools/demo.py --study label-count: every seg count with the three methods, nested splits with the same
    det labels, paired gains, the chart."""
    out = quick_study
    res = json.loads((out / 'study.json').read_text())
    assert res['meta']['counts'] == ['1', '2'] and set(res['settings']) == {'1', '2'}
    splits = {}
    for n, st in res['settings'].items():
        assert st['n_seg'] == int(n) and list(
            st['methods']) == ['supervised', 'fixmatch_explicit', 'densefixmatch_explicit']
        sup = st['methods']['supervised']['runs']
        for key in ('fixmatch_explicit', 'densefixmatch_explicit'):
            r = st['methods'][key]
            for k in ('det/bbox_mAP', 'seg/mIoU', 'multitask/gmean'):
                assert r['paired'][k]['diffs'] == pytest.approx(
                    [a['test'][k] - b['test'][k] for a, b in zip(r['runs'], sup)])
        (split, ) = glob.glob(str(out / 'data' / 'cityscapes' / 'splits' / f'd_*_{n}_seed0.json'))
        splits[n] = json.loads(open(split).read())['labeled']
    assert splits['1']['det'] == splits['2']['det'] and set(splits['1']['seg']) < set(splits['2']['seg'])
    assert cv2.imread(str(out / 'study.png')) is not None and '| 2 | Dense FixMatch (explicit) − supervised |' in (
        out / 'study.md').read_text()
