"""Inference on images without labels: MultiTaskInferencer and tools/infer.py against the model's own test path."""
import glob
import importlib.util
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.runner import load_checkpoint

import mtssl_mm  # noqa: F401
from mtssl_mm.apis import InferenceDefaults, MultiTaskInferencer, collect_images, inference_pipeline, output_names
from mtssl_mm.apis.inferencer import UnreadableImageWarning
from mtssl_mm.tasks.segmentation.data import seg_id_table
from fixtures import DET_CLASSES, REPO, TINY_CONFIG, write_dataset

FIXMATCH_TINY = osp.join(REPO, 'configs', 'demo', 'fixmatch_tiny.py')
INFER = osp.join(REPO, 'tools', 'infer.py')
CKPT_CLASSES = [f'ckpt_{c}' for c in DET_CLASSES]  # names only the checkpoint's metainfo has
# cityscapesscripts' table, trainId -> label id (the converter maps the other way)
CITYSCAPES_IDS = np.array([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33], np.uint8)
SPLITS = dict(val=(64, 128), odd=(72, 100))  # the second size is no multiple of 32: padded, then cropped back


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """A labeled data set (for the reference: the test pipeline of tools/test.py) and the same images alone in a
    folder tree with no label file (for the inferencer)."""
    root = str(tmp_path_factory.mktemp('infer'))
    for seed, (split, (h, w)) in enumerate(SPLITS.items()):
        write_dataset(osp.join(root, 'labeled'), [('det', 'seg')] * 2, split=split, h=h, w=w, seed=seed)
    images = osp.join(root, 'images')
    for split in SPLITS:
        shutil.copytree(osp.join(root, 'labeled', 'leftImg8bit', split), osp.join(images, split))
    return root


def tiny_model(config, seed):
    """The config's model, randomly initialised, with RetinaNet's classification bias near 0 so that boxes score
    about 0.5 (mmdet's initialisation scores them 0.01, below every threshold), and a segmentation map that is not one
    class everywhere."""
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(config).model)
    for name, module in model.named_modules():
        if name.endswith('det.head'):
            torch.nn.init.normal_(module.retina_cls.bias, 0.0, 0.5)
        if name.endswith('seg.head'):  # large weights: many classes, changing across the image
            torch.nn.init.normal_(module.conv_seg.weight, 0.0, 3.0)
    return model.eval()


@pytest.fixture(scope='module')
def sup_ckpt(data):
    path = osp.join(data, 'sup.pth')
    torch.save(
        dict(state_dict=tiny_model(TINY_CONFIG, 0).state_dict(), meta=dict(dataset_meta=dict(classes=CKPT_CLASSES))),
        path)
    return path


@pytest.fixture(scope='module')
def semi_ckpt(data):
    """A semi-supervised checkpoint whose teacher differs from its student; no metainfo in it."""
    model = tiny_model(FIXMATCH_TINY, 1)
    with torch.no_grad():
        for name, p in model.teacher.named_parameters():
            if 'conv_seg' in name or 'retina_reg' in name:  # other segmentation, other boxes (of the same scores)
                p.add_(torch.randn_like(p))
    path = osp.join(data, 'semi.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def reference(config, ckpt, root):
    """The model's predictions through tools/test.py's path: the labeled data set, its test pipeline (with
    LoadMultiTaskAnnotations), one image per batch, ``model.test_step``. Keyed by image path relative to
    leftImg8bit/ (the images/ folder of the inferencer holds the same tree)."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    model = MODELS.build(cfg.model)
    load_checkpoint(model, ckpt, map_location='cpu', strict=True, logger='silent')
    model.eval()
    preds = {}
    for split in SPLITS:
        dataset = DATASETS.build(
            dict(
                cfg.test_dataloader.dataset, data_root=osp.join(root, 'labeled'), ann_file=f'annotations/{split}.json'))
        for i in range(len(dataset)):
            with torch.no_grad():
                pred = model.test_step(pseudo_collate([dataset[i]]))[0]
            preds[osp.relpath(pred.img_path, osp.join(root, 'labeled', 'leftImg8bit'))] = pred
    return model, preds


def assert_same_prediction(result, pred, out_dir, score_thr, table, classes):
    """The inferencer's JSON and PNG for one image equal the reference data sample."""
    h, w = pred.ori_shape
    assert (result['height'], result['width']) == (h, w)
    keep = pred.pred_instances.scores >= score_thr
    ref = pred.pred_instances[keep]
    order = torch.argsort(ref.scores, descending=True, stable=True)
    ref = ref[order]
    assert len(result['boxes']) == len(ref) > 0
    boxes = np.array([b['bbox'] for b in result['boxes']])
    x1y1x2y2 = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    np.testing.assert_allclose(x1y1x2y2, ref.bboxes.numpy(), atol=1e-3)
    np.testing.assert_allclose([b['score'] for b in result['boxes']], ref.scores.numpy(), atol=1e-5)
    assert [b['category_id'] for b in result['boxes']] == ref.labels.tolist()
    assert [b['category'] for b in result['boxes']] == [classes[i] for i in ref.labels.tolist()]
    assert all(b['score'] >= score_thr for b in result['boxes'])
    png = cv2.imread(osp.join(out_dir, result['seg']), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == (h, w), 'single channel, the image\'s size'
    expected = table[pred.pred_sem_seg.sem_seg[0].numpy()]
    assert (png == expected).all()


# ----------------------------------------------------------------------------------------- pipeline, inputs
def test_inference_pipeline_drops_annotations_keeps_other_steps_and_packs_an_array():
    test_pipeline = Config.fromfile(TINY_CONFIG).test_dataloader.dataset.pipeline
    test_pipeline.insert(2, dict(type='Resize', scale=(64, 32), keep_ratio=True))  # any other step stays
    steps = inference_pipeline(test_pipeline)
    names = [s['type'] if isinstance(s, dict) else type(s).__name__ for s in steps]
    assert names == ['mmdet.InferencerLoader', 'Resize', 'InferenceDefaults', 'PackMultiTaskInputs']
    assert test_pipeline[0]['type'] == 'LoadImageFromFile', 'the config is not modified'
    packed = Compose(steps)(dict(img=np.zeros((40, 100, 3), np.uint8)))
    meta = packed['data_samples'].metainfo
    assert meta['ori_shape'] == (40, 100) and meta['img_shape'] == (26, 64)
    np.testing.assert_allclose(meta['scale_factor'], (0.64, 0.65))
    assert meta['labeled_tasks'] == ()
    assert 'gt_sem_seg' not in packed['data_samples'] and len(packed['data_samples'].gt_instances) == 0
    # without a resize step the predictions are in the image's pixels: scale factor 1
    steps = inference_pipeline([dict(type='LoadImageFromFile'), dict(type='PackDetInputs', meta_keys=('img_id', ))])
    assert isinstance(steps[1], InferenceDefaults)
    assert set(steps[2]['meta_keys']) >= {'img_path', 'ori_shape', 'img_shape', 'scale_factor'}
    assert Compose(steps)(dict(img=np.zeros((8, 8, 3), np.uint8)))['data_samples'].scale_factor == (1.0, 1.0)


def test_pipeline_without_image_loader_or_packing_is_an_error():
    with pytest.raises(ValueError, match=r'cfg\.py: no image loading step .*LoadMultiTaskAnnotations'):
        inference_pipeline([dict(type='LoadMultiTaskAnnotations'), dict(type='PackMultiTaskInputs')], source='cfg.py')
    with pytest.raises(ValueError, match='no packing step'):
        inference_pipeline([dict(type='LoadImageFromFile')])


def test_collect_images_from_files_folders_globs(tmp_path):
    for rel in ('a/x.png', 'a/deep/y.JPG', 'b/x.png', 'b/notes.txt', 'empty/readme.md'):
        os.makedirs(tmp_path / osp.dirname(rel), exist_ok=True)
        (tmp_path / rel).write_bytes(b'')
    found = collect_images([str(tmp_path / 'a')])
    assert found == [str(tmp_path / 'a' / 'deep' / 'y.JPG'), str(tmp_path / 'a' / 'x.png')], 'recursive, sorted'
    # a glob; a file reached twice is kept once, in its first place; a file given explicitly is taken as is
    found = collect_images([str(tmp_path / '*' / 'x.png'), str(tmp_path / 'a'), str(tmp_path / 'b' / 'notes.txt')])
    assert found == [
        str(tmp_path / 'a' / 'x.png'),
        str(tmp_path / 'b' / 'x.png'),
        str(tmp_path / 'a' / 'deep' / 'y.JPG'),
        str(tmp_path / 'b' / 'notes.txt')
    ]
    assert collect_images([str(tmp_path / '**' / '*.JPG')]) == [str(tmp_path / 'a' / 'deep' / 'y.JPG')]
    for bad, msg in ((tmp_path / 'missing.png', 'no such file or folder'), (tmp_path / 'empty', 'folder holds no'),
                     (tmp_path / '*.png', 'glob pattern matches no')):
        with pytest.raises(FileNotFoundError, match=msg) as err:
            collect_images([str(tmp_path / 'a'), str(bad)])
        assert repr(str(bad)) in str(err.value), 'the message names the input'


def test_output_names_are_distinct_and_say_where_the_image_came_from():
    paths = ['d/a/x.png', 'd/b/x.png', 'd/c/y.png', 'e/z.png', 'e/z.jpg', 'a__x.png']
    assert output_names(paths) == ['a__x', 'b__x', 'y', 'z_png', 'z_jpg', 'a__x-1']


def test_seg_label_ids_are_the_cityscapes_ids_of_the_train_ids():
    from cityscapesscripts.helpers.labels import labels
    inverse = {lb.trainId: lb.id for lb in labels if 0 <= lb.trainId < 255}
    for config in (TINY_CONFIG, FIXMATCH_TINY, osp.join(REPO, 'configs', 'demo', 'densefixmatch_explicit.py'),
                   osp.join(REPO, 'configs', 'cityscapes', 'supervised_partial.py')):
        meta = Config.fromfile(config).test_dataloader.dataset.metainfo
        assert list(meta['seg_label_ids']) == [inverse[i] for i in range(19)] == CITYSCAPES_IDS.tolist()
    assert seg_id_table(dict(seg_label_ids=None), 19, 'x') is None
    with pytest.raises(ValueError, match='x: seg_label_ids has 18 ids, the segmentation head has 19'):
        seg_id_table(dict(seg_label_ids=list(range(18))), 19, 'x')
    with pytest.raises(ValueError, match='distinct ids in 0..255'):
        seg_id_table(dict(seg_label_ids=[7] * 19), 19, 'x')


# ----------------------------------------------------------------------------------------- the inferencer
def test_matches_the_test_pipeline_prediction_on_images_without_labels(data, sup_ckpt, tmp_path):
    """Same boxes (original pixels, COCO xywh, score >= thr) and the same segmentation (as Cityscapes ids) as
    tools/test.py's path, on two image sizes; class names from the checkpoint's metainfo."""
    model, ref = reference(TINY_CONFIG, sup_ckpt, data)
    inferencer = MultiTaskInferencer(TINY_CONFIG, sup_ckpt, device='cpu', score_thr=0.45, show_progress=False)
    out = str(tmp_path / 'out')
    results = inferencer(osp.join(data, 'images'), out_dir=out)['predictions']
    assert len(results) == len(ref) == 4
    for result in results:
        rel = osp.relpath(result['img_path'], osp.join(data, 'images'))
        # the two splits hold images of the same name: outputs named after split and city, none overwritten
        name = osp.splitext(rel)[0].replace(os.sep, '__')
        assert result['seg'] == f'seg/{name}.png'
        with open(osp.join(out, 'preds', f'{name}.json')) as f:
            assert json.load(f) == result
        assert result['seg_ids'] == 'seg_label_ids' and result['tasks'] == ['det', 'seg']
        assert_same_prediction(result, ref[rel], out, 0.45, CITYSCAPES_IDS, CKPT_CLASSES)
        assert cv2.imread(osp.join(out, 'vis', f'{name}.jpg')).shape[:2] == ref[rel].ori_shape
    pngs = np.concatenate([cv2.imread(p, cv2.IMREAD_UNCHANGED).ravel() for p in glob.glob(f'{out}/seg/*.png')])
    assert set(np.unique(pngs)) <= set(CITYSCAPES_IDS.tolist()) and len(np.unique(pngs)) > 1

    # batches of 2 (padded together) and a BGR array give the same predictions; nothing written without out_dir
    path = sorted(glob.glob(osp.join(data, 'images', 'val', '*', '*.png')))[0]
    batched = inferencer([osp.join(data, 'images', 'val'), cv2.imread(path)], batch_size=2)['predictions']
    assert batched[2]['img_path'] is None
    by_path = {r['img_path']: r for r in results}
    for result in (batched[0], batched[2]):
        pred = ref[osp.relpath(path, osp.join(data, 'images'))]
        assert result['sem_seg'].shape == pred.ori_shape
        assert (result['sem_seg'] == CITYSCAPES_IDS[pred.pred_sem_seg.sem_seg[0].numpy()]).all()
        np.testing.assert_allclose([b['bbox'] for b in result['boxes']], [b['bbox'] for b in by_path[path]['boxes']],
                                   atol=1e-3)
    assert not osp.exists(osp.join(out, 'preds', 'array_00000000.json'))


def test_resizing_test_pipeline_predicts_in_original_pixels(data, sup_ckpt, tmp_path):
    """A test pipeline that resizes (to 2/3 here): boxes and segmentation come back at the image's size, equal to
    the test_step path through the same pipeline."""
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.test_dataloader.dataset.pipeline.insert(1, dict(type='Resize', scale=(96, 48), keep_ratio=True))
    model, ref = reference(cfg, sup_ckpt, data)
    assert all(pred.img_shape != pred.ori_shape for pred in ref.values())
    inferencer = MultiTaskInferencer(cfg, sup_ckpt, device='cpu', score_thr=0.45, show_progress=False)
    out = str(tmp_path / 'out')
    results = inferencer(osp.join(data, 'images', 'odd'), out_dir=out, no_save_vis=True)['predictions']
    assert len(results) == 2
    for result in results:
        rel = osp.relpath(result['img_path'], osp.join(data, 'images'))
        assert_same_prediction(result, ref[rel], out, 0.45, CITYSCAPES_IDS, CKPT_CLASSES)


def test_semi_supervised_config_predicts_with_the_teacher(data, semi_ckpt, tmp_path):
    """FixMatch* config and checkpoint: the teacher's predictions (not the student's); class names from the config
    (the checkpoint has no metainfo); --train-ids writes class indices."""
    model, ref = reference(FIXMATCH_TINY, semi_ckpt, data)
    inferencer = MultiTaskInferencer(
        FIXMATCH_TINY, semi_ckpt, device='cpu', score_thr=0.4, train_ids=True, show_progress=False)
    out = str(tmp_path / 'out')
    results = inferencer(osp.join(data, 'images', 'val'), out_dir=out, no_save_vis=True)['predictions']
    assert not osp.exists(osp.join(out, 'vis'))
    identity = np.arange(19, dtype=np.uint8)
    for result in results:
        assert result['seg_ids'] == 'class_indices'
        rel = osp.relpath(result['img_path'], osp.join(data, 'images'))
        assert_same_prediction(result, ref[rel], out, 0.4, identity, DET_CLASSES)
    # the reference is the teacher: the student predicts something else
    model.semi_test_cfg['predict_on'] = 'student'
    rel = osp.relpath(results[0]['img_path'], osp.join(data, 'images'))
    dataset = DATASETS.build(
        dict(
            Config.fromfile(FIXMATCH_TINY).test_dataloader.dataset,
            data_root=osp.join(data, 'labeled'),
            ann_file='annotations/val.json'))
    with torch.no_grad():
        student = model.test_step(pseudo_collate([dataset[0]]))[0]
    assert student.img_path.endswith(rel)
    assert not torch.equal(student.pred_sem_seg.sem_seg, ref[rel].pred_sem_seg.sem_seg)

    # a semi-supervised checkpoint does not fit the supervised config: an error naming it, not random weights
    with pytest.raises(RuntimeError, match=f'checkpoint {semi_ckpt} does not fit the model of .*supervised_tiny'):
        MultiTaskInferencer(TINY_CONFIG, semi_ckpt, device='cpu')
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['depth'\]; the model .* has the tasks \['det', 'seg'\]"):
        MultiTaskInferencer(FIXMATCH_TINY, semi_ckpt, device='cpu', tasks=['depth'])


def test_same_stem_in_two_folders_writes_two_files(data, sup_ckpt, tmp_path):
    src = sorted(glob.glob(osp.join(data, 'images', 'val', '*', '*.png')))[:2]
    for folder, path in zip(('a', 'b'), src):
        os.makedirs(tmp_path / 'in' / folder)
        shutil.copy(path, tmp_path / 'in' / folder / 'frame.png')
    inferencer = MultiTaskInferencer(TINY_CONFIG, sup_ckpt, device='cpu', tasks=['seg'], show_progress=False)
    out = tmp_path / 'out'
    results = inferencer(str(tmp_path / 'in'), out_dir=str(out), no_save_vis=True)['predictions']
    assert sorted(os.listdir(out / 'preds')) == ['a__frame.json', 'b__frame.json']
    assert sorted(os.listdir(out / 'seg')) == ['a__frame.png', 'b__frame.png']
    assert [r['seg'] for r in results] == ['seg/a__frame.png', 'seg/b__frame.png']
    assert 'boxes' not in results[0] and results[0]['tasks'] == ['seg']
    assert json.loads(
        (out / 'preds' / 'b__frame.json').read_text())['img_path'].endswith(osp.join('in', 'b', 'frame.png'))


# ----------------------------------------------------------------------------------------- tools/infer.py
def load_infer_tool():
    spec = importlib.util.spec_from_file_location('infer_tool', INFER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_folder_and_glob_with_tasks_det(data, sup_ckpt, tmp_path):
    out = str(tmp_path / 'out')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    cmd = [
        sys.executable, INFER, TINY_CONFIG, sup_ckpt,
        osp.join(data, 'images', 'val'),
        osp.join(data, 'images', 'odd', '*', '*.png'), '--out-dir', out, '--device', 'cpu', '--batch-size', '2',
        '--score-thr', '0.45', '--tasks', 'det'
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '4 images' in proc.stdout and 'wrote preds/, vis/' in proc.stdout
    assert not osp.exists(osp.join(out, 'seg')), '--tasks det writes no segmentation'
    preds = sorted(glob.glob(osp.join(out, 'preds', '*.json')))
    assert len(preds) == 4 and len(glob.glob(osp.join(out, 'vis', '*.jpg'))) == 4
    for path in preds:
        with open(path) as f:
            result = json.load(f)
        assert result['tasks'] == ['det'] and 'seg' not in result
        assert result['boxes'] and all(b['score'] >= 0.45 and b['category'] in CKPT_CLASSES for b in result['boxes'])
        x, y, w, h = np.array([b['bbox'] for b in result['boxes']]).T
        assert (w > 0).all() and (h > 0).all() and (x + w <= result['width'] + 1e-3).all()


def test_cli_missing_input_is_an_error_naming_it(data, sup_ckpt, tmp_path, capsys):
    """One line ``<prog>: error: ...`` and exit status 2, before the model is loaded; nothing written."""
    tool = load_infer_tool()

    def error_line(argv):
        with pytest.raises(SystemExit) as info:
            tool.main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.count('\n') == 1, err
        return err.split(': error: ', 1)[1]

    missing = osp.join(data, 'images', 'nope', '*.png')
    assert re.fullmatch(
        r"input '.*nope/\*\.png': the glob pattern matches no image .*\n",
        error_line([TINY_CONFIG, sup_ckpt,
                    osp.join(data, 'images'), missing, '--out-dir',
                    str(tmp_path)]))
    absent = str(tmp_path / 'absent.pth')
    assert error_line([TINY_CONFIG, absent, osp.join(data, 'images'), '--out-dir',
                       str(tmp_path)]) == (f'{absent}: checkpoint does not exist\n')
    assert os.listdir(tmp_path) == [], 'nothing written'


# ----------------------------------------------------------------------------------------- unreadable images
def write_images(folder, data):
    """Three readable images (two PNGs, a JPEG) and three that cannot be read: a truncated JPEG (the first half of
    the real JPEG's bytes: an interrupted copy), an empty PNG and a text file named .jpg. Paths (good, bad)."""
    os.makedirs(folder)
    src = sorted(glob.glob(osp.join(data, 'images', 'val', '*', '*.png')))[:2]
    good = [osp.join(folder, 'good_a.png'), osp.join(folder, 'good_b.png'), osp.join(folder, 'good_c.jpg')]
    for path, s in zip(good, src):
        shutil.copy(s, path)
    jpeg = cv2.imencode('.jpg', cv2.imread(src[0]))[1].tobytes()
    with open(good[2], 'wb') as f:
        f.write(jpeg)
    bad = [osp.join(folder, n) for n in ('bad_empty.png', 'bad_text.jpg', 'bad_truncated.jpg')]
    for path, content in zip(bad, (b'', b'not an image, only text\n', jpeg[:len(jpeg) // 2])):
        with open(path, 'wb') as f:
            f.write(content)
    return good, bad


def test_truncated_jpeg_stops_the_configs_image_loader(data, tmp_path):
    """The case of the issue, reproduced: the config's loader (mmcv's LoadImageFromFile with the cv2 backend, inside
    the inference pipeline) stops with an AssertionError on the first half of a JPEG, and raises on an empty file."""
    good, bad = write_images(str(tmp_path / 'in'), data)
    pipeline = Compose(inference_pipeline(Config.fromfile(TINY_CONFIG).test_dataloader.dataset.pipeline))
    assert pipeline(dict(img_path=good[2]))['inputs'].shape[1:] == (64, 128)
    for path in (bad[1], bad[2]):
        with pytest.raises(AssertionError, match=f'failed to load image: {re.escape(path)}'):
            pipeline(dict(img_path=path))
    with pytest.raises(Exception):
        pipeline(dict(img_path=bad[0]))


def test_unreadable_images_are_skipped_with_a_warning_each_read_once(data, sup_ckpt, tmp_path, monkeypatch):
    import mmengine.fileio
    good, bad = write_images(str(tmp_path / 'in'), data)
    inferencer = MultiTaskInferencer(TINY_CONFIG, sup_ckpt, device='cpu', score_thr=0.45, show_progress=False)
    reads = []
    real_get = mmengine.fileio.get
    monkeypatch.setattr(mmengine.fileio, 'get', lambda path, *a, **k: reads.append(path) or real_get(path, *a, **k))
    out = tmp_path / 'out'
    with pytest.warns(UnreadableImageWarning) as record:
        results = inferencer(str(tmp_path / 'in'), out_dir=str(out), batch_size=2)
    # every image read once (the picture is drawn from the same array); the empty file is not even opened
    assert sorted(reads) == sorted(good + bad[1:])
    assert results['skipped'] == bad
    for path in bad:
        assert any(str(w.message).startswith(f'{path}: cannot read the image (') for w in record), path
    assert f'{bad[0]}: cannot read the image (the file is empty); skipped' in [str(w.message) for w in record]
    assert [r['img_path'] for r in results['predictions']] == good
    for sub, ext in (('preds', 'json'), ('seg', 'png'), ('vis', 'jpg')):
        assert sorted(os.listdir(out / sub)) == [f'good_{c}.{ext}' for c in 'abc']
    # the same predictions as without the unreadable images (and the JPEG as read from the file)
    alone = inferencer(good, batch_size=1)['predictions']
    for r, a in zip(results['predictions'], alone):
        assert r['img_path'] == a['img_path'] and len(r['boxes']) == len(a['boxes']) > 0
        np.testing.assert_allclose([b['bbox'] for b in r['boxes']], [b['bbox'] for b in a['boxes']], atol=1e-3)
        assert (cv2.imread(str(out / r['seg']), cv2.IMREAD_UNCHANGED) == a['sem_seg']).all()
    assert cv2.imread(str(out / 'vis' / 'good_c.jpg')).shape[:2] == (64, 128)


def test_unreadable_images_are_skipped_with_the_pillow_backend_too(data, sup_ckpt, tmp_path):
    """With ``imdecode_backend='pillow'`` the decoder raises (OSError: image file is truncated) instead of giving
    None: the same files are skipped, named."""
    good, bad = write_images(str(tmp_path / 'in'), data)
    cfg = Config.fromfile(TINY_CONFIG)
    assert cfg.test_dataloader.dataset.pipeline[0]['type'] == 'LoadImageFromFile'
    cfg.test_dataloader.dataset.pipeline[0]['imdecode_backend'] = 'pillow'
    inferencer = MultiTaskInferencer(cfg, sup_ckpt, device='cpu', tasks=['seg'], show_progress=False)
    with pytest.warns(UnreadableImageWarning) as record:
        results = inferencer(str(tmp_path / 'in'))
    assert results['skipped'] == bad and [r['img_path'] for r in results['predictions']] == good
    messages = [str(w.message) for w in record]
    assert f'{bad[2]}: cannot read the image (OSError: image file is truncated' in '\n'.join(messages), messages


def test_cli_skips_unreadable_images_lists_them_and_exits_1(data, sup_ckpt, tmp_path):
    """tools/infer.py on a folder with unreadable images: a warning naming each, every other image's outputs
    written, the skipped files listed at the end, exit status 1, no traceback."""
    good, bad = write_images(str(tmp_path / 'in'), data)
    out = str(tmp_path / 'out')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    cmd = [
        sys.executable, INFER, TINY_CONFIG, sup_ckpt,
        str(tmp_path / 'in'), '--out-dir', out, '--device', 'cpu', '--batch-size', '2'
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr and 'AssertionError' not in proc.stderr, proc.stderr[-3000:]
    for path in bad:  # one line each, as it happens
        assert f'\ninfer.py: warning: {path}: cannot read the image (' in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.endswith('infer.py: 3 of 6 images could not be read and were skipped (no output for them):\n' +
                                ''.join(f'  {p}\n' for p in bad)), proc.stderr[-3000:]
    assert '3 images' in proc.stdout
    for sub, ext in (('preds', 'json'), ('seg', 'png'), ('vis', 'jpg')):
        assert sorted(os.listdir(osp.join(out, sub))) == [f'good_{c}.{ext}' for c in 'abc']
