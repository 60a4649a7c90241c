"""ONNX export (tools/deploy/export_onnx.py): onnxruntime's outputs equal PyTorch's, names and shapes as documented,
the flattened detection rows follow mmdet's anchor order, and bad inputs stop with one clear line."""
import json
import logging
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from mtssl_mm.deploy import onnx_export as ox
from mtssl_mm.tasks.attributes import AttributesTask
from mtssl_mm.tasks.base import BaseTask
from mtssl_mm.tasks.detection import flatten_level
from fixtures import REPO, TINY_CONFIG

EXPORT = osp.join(REPO, 'tools', 'deploy', 'export_onnx.py')
FIXMATCH_TINY = osp.join(REPO, 'configs', 'demo', 'fixmatch_tiny.py')
H, W = 128, 256
DET_CLASSES = [f'c{i}' for i in range(8)]
SEG_CLASSES = [f's{i}' for i in range(19)]


def export_main():
    """tools/deploy/export_onnx.py's ``main``, imported from its file (tools/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('export_onnx_tool', EXPORT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The tiny supervised model, random weights with the output layers scaled up so that every output is O(1)
    (at mmdet's init the seg logits are ~1e-3 and the box deltas ~1e-2, which an absolute tolerance would not
    test), saved as a Runner-style checkpoint; returns ``(model, checkpoint path, directory)``."""
    root = tmp_path_factory.mktemp('onnx')
    torch.manual_seed(0)
    model, _ = ox.build_model(Config.fromfile(TINY_CONFIG))
    model.init_weights()
    state = model.state_dict()
    for key, factor in (('tasks.det.head.retina_cls.weight', 100), ('tasks.det.head.retina_reg.weight', 100),
                        ('tasks.seg.head.conv_seg.weight', 1000)):
        state[key] = state[key] * factor
    model.load_state_dict(state)
    ckpt = str(root / 'tiny.pth')
    torch.save(dict(state_dict=state, meta=dict(dataset_meta=dict(classes=DET_CLASSES, seg_classes=SEG_CLASSES))), ckpt)
    return model.eval(), ckpt, root


def run_cli(args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    return subprocess.run([sys.executable, EXPORT, *args],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


def test_cli_exports_one_graph_that_onnxruntime_runs_like_pytorch(tiny):
    model, ckpt, root = tiny
    out = str(root / 'model.onnx')
    proc = run_cli([TINY_CONFIG, ckpt, out, '--shape', str(H), str(W), '--dynamic-batch'])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert 'check passed' in proc.stdout
    outputs = ['det_cls_scores', 'det_bbox_deltas', 'seg_logits']
    for name in outputs:
        assert f'{name} ' in proc.stdout  # one error line per output

    # the graph: one input, the three documented outputs, a symbolic batch axis
    graph = onnx.load(out).graph
    assert ox.onnx_opset(out) >= ox.DYNAMO_MIN_OPSET
    dims = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in list(graph.input) + list(graph.output)
    }
    n = sum(h * w * 9 for h, w in ((16, 32), (8, 16), (8, 16), (4, 8), (2, 4)))  # strides 8, 16, 16, 32, 64
    assert [v.name for v in graph.input] == ['img']
    assert [v.name for v in graph.output] == outputs
    batch = dims['img'][0]
    assert isinstance(batch, str) and batch
    assert dims == {
        'img': [batch, 3, H, W],
        'det_cls_scores': [batch, n, 8],
        'det_bbox_deltas': [batch, n, 4],
        'seg_logits': [batch, 19, H // 4, W // 4]
    }
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta['mtssl_mm.det_classes']) == DET_CLASSES
    assert json.loads(meta['mtssl_mm.seg_classes']) == SEG_CLASSES
    assert json.loads(
        meta['mtssl_mm.det_level_rows']) == [h * w * 9 for h, w in ((16, 32), (8, 16), (8, 16), (4, 8), (2, 4))]
    assert meta['mtssl_mm.input_channel_order'] == 'bgr'
    assert json.loads(meta['mtssl_mm.mean']) == pytest.approx([123.675, 116.28, 103.53])

    # onnxruntime on a batch of 2 BGR images against the PyTorch model with mmdet's own preprocessing
    img = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(5)) * 255
    got = ort.InferenceSession(out, providers=['CPUExecutionProvider']).run(None, {'img': img.numpy()})
    with torch.no_grad():
        x = model.data_preprocessor({'inputs': list(img), 'data_samples': None}, False)['inputs']
        raw = model._forward(x)
    cls_scores, bbox_preds = raw['det']
    want = [
        torch.cat([flatten_level(s, 8) for s in cls_scores], 1),
        torch.cat([flatten_level(b, 4) for b in bbox_preds], 1), raw['seg']
    ]
    for name, g, w in zip(outputs, got, want):
        w = w.numpy()
        assert g.shape == w.shape, name
        assert np.abs(w).max() > 0.5, f'{name}: outputs too small to test a tolerance'
        err = np.abs(g - w).max()
        assert err <= ox.ATOL + ox.RTOL * np.abs(w).max(), f'{name}: max abs error {err}'

    # row n of the flattened outputs belongs to row n of the anchors file: decoding the ONNX outputs with those
    # anchors gives mmdet's own predict_by_feat boxes (all anchors and classes, no NMS), best 50 compared
    anchors = torch.from_numpy(np.load(out[:-len('.onnx')] + '_det_anchors.npy'))
    assert anchors.shape == (n, 4)
    head = model.tasks['det'].head
    scores = torch.from_numpy(got[0][0]).sigmoid()
    boxes = head.bbox_coder.decode(anchors, torch.from_numpy(got[1][0]), max_shape=(H, W))
    top = scores.flatten().topk(50)
    mine = torch.cat([boxes[top.indices // 8], top.values[:, None], (top.indices % 8)[:, None].float()], 1)
    with torch.no_grad():
        res = head.predict_by_feat([s[:1] for s in cls_scores], [b[:1] for b in bbox_preds],
                                   batch_img_metas=[dict(img_shape=(H, W), scale_factor=(1.0, 1.0))],
                                   cfg=dict(nms_pre=10**9, score_thr=0.0),
                                   rescale=False,
                                   with_nms=False)[0]
    order = res.scores.argsort(descending=True)[:50]
    theirs = torch.cat([res.bboxes[order], res.scores[order, None], res.labels[order, None].float()], 1)
    assert top.values[0] > top.values[-1]  # the comparison sees distinct scores
    torch.testing.assert_close(mine, theirs, atol=1e-3, rtol=1e-4)


def test_torchscript_exporter_and_semi_supervised_config(tiny, tmp_path):
    """The legacy exporter gives the same graph; a semi-supervised config exports its model.detector."""
    _, ckpt, _ = tiny
    model, meta = ox.build_model(Config.fromfile(FIXMATCH_TINY), ckpt)
    assert type(model).__name__ == 'MultiTaskModel' and meta['dataset_meta']['classes'] == DET_CLASSES
    wrapper = ox.MultiTaskOnnxWrapper.from_model(model)
    out = ox.export_onnx(wrapper, str(tmp_path / 'ts.onnx'), (H, W), exporter='torchscript', opset=17)
    assert ox.onnx_opset(out) == 17
    img = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(2)) * 255
    stats = ox.compare_with_onnxruntime(wrapper, out, img)
    assert [s['name'] for s in stats] == ['det_cls_scores', 'det_bbox_deltas', 'seg_logits']
    assert all(s['ok'] and s['scale'] > 0.5 for s in stats), ox.format_stats(stats, ox.ATOL, ox.RTOL)

    # the check can fail: other weights in PyTorch than in the file
    with torch.no_grad():
        model.tasks['seg'].head.conv_seg.bias += 0.01
    stats = ox.compare_with_onnxruntime(wrapper, out, img)
    assert [s['ok'] for s in stats] == [True, True, False]
    assert 'FAIL' in ox.format_stats(stats, ox.ATOL, ox.RTOL)


def test_cli_exit_status_1_when_the_check_fails(tiny, tmp_path, monkeypatch, capsys):
    _, ckpt, _ = tiny
    tool = export_main()
    monkeypatch.setattr(
        tool.ox, 'compare_with_onnxruntime',
        lambda *a, **k: [dict(name='seg_logits', shape=(1, 19, 32, 64), max_abs=1.0, scale=1.0, rel=1.0, ok=False)])
    assert tool.main(
        [TINY_CONFIG, ckpt,
         str(tmp_path / 'x.onnx'), '--shape',
         str(H), str(W), '--exporter', 'torchscript']) == 1
    assert 'check FAILED' in capsys.readouterr().err


def test_bad_inputs_stop_with_one_clear_line(tiny, tmp_path, capsys):
    _, ckpt, _ = tiny
    tool = export_main()
    out = str(tmp_path / 'x.onnx')
    state = torch.load(ckpt, weights_only=True)['state_dict']
    wrong = str(tmp_path / 'wrong.pth')
    torch.save(dict(state_dict={k: v for k, v in state.items() if not k.startswith('tasks.seg.')}), wrong)
    shape = str(tmp_path / 'shape.pth')
    torch.save(dict(state_dict={k: v[:1] if k.endswith('conv_seg.weight') else v for k, v in state.items()}), shape)
    cases = [
        ([TINY_CONFIG, str(tmp_path / 'none.pth'), out], 'checkpoint'),
        ([TINY_CONFIG, wrong, out], f'{wrong}: the checkpoint does not fit MultiTaskModel: '),
        ([TINY_CONFIG, shape, out], f'{shape} does not fit the config\'s model: '),
        ([TINY_CONFIG, ckpt, out, '--shape', '100', str(W)], 'multiples of 32'),
        ([TINY_CONFIG, ckpt, str(tmp_path / 'x.pth')], 'must be a .onnx file'),
        ([TINY_CONFIG, ckpt, out, '--opset', '17'], 'use --exporter torchscript'),
    ]
    for args, words in cases:
        with pytest.raises(SystemExit) as exc:
            tool.main(args)
        assert exc.value.code == 2, args
        err = capsys.readouterr().err
        assert words in err and 'Traceback' not in err, (args, err)
    assert not osp.exists(out)


def test_semi_supervised_checkpoint_exports_its_teacher(tiny, tmp_path):
    """A semi-supervised checkpoint needs no extraction: its EMA teacher loads (the student with
    ``semi_test_cfg.predict_on='student'``), under a semi-supervised or a supervised config of the same model."""
    _, ckpt, _ = tiny
    state = torch.load(ckpt, weights_only=True)['state_dict']
    semi = str(tmp_path / 'semi.pth')
    torch.save(
        dict(
            state_dict={
                **{
                    f'teacher.{k}': v
                    for k, v in state.items()
                },
                **{
                    f'student.{k}': v * 0 if v.is_floating_point() else v
                    for k, v in state.items()
                }
            },
            meta=dict(dataset_meta=dict(classes=DET_CLASSES))), semi)
    key = 'tasks.seg.head.conv_seg.weight'
    for config in (FIXMATCH_TINY, TINY_CONFIG):
        model, meta = ox.build_model(Config.fromfile(config), semi)
        torch.testing.assert_close(model.state_dict()[key], state[key])  # the teacher, not the zeroed student
        assert meta['dataset_meta']['classes'] == DET_CLASSES
    cfg = Config.fromfile(FIXMATCH_TINY)
    cfg.model.semi_test_cfg = dict(predict_on='student')
    model, _ = ox.build_model(cfg, semi)
    assert model.state_dict()[key].abs().sum() == 0 and state[key].abs().sum() > 0


class NoExportAttributes(AttributesTask):
    """An attribute task without the export hook."""
    export_outputs = BaseTask.export_outputs


def test_attribute_task_gets_its_outputs_and_metadata(tmp_path):
    """A third task joins the graph through its own export_outputs/export_metadata, with no edit of the export."""
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.tasks.attr = dict(type='AttributesTask', attributes=dict(weather=3, scene=2), in_channels=512)
    torch.manual_seed(0)
    model, _ = ox.build_model(cfg)
    with torch.no_grad():
        for fc in model.tasks['attr'].classifiers.values():
            fc.weight.mul_(100)  # O(1) logits, so that the tolerance is tested
    wrapper = ox.MultiTaskOnnxWrapper.from_model(model)
    names = ['det_cls_scores', 'det_bbox_deltas', 'seg_logits', 'attr_weather_logits', 'attr_scene_logits']
    assert wrapper.output_names == names
    classes = dict(weather=['clear', 'rainy', 'snowy'], scene=['city street', 'highway'])
    task_meta, arrays = ox.task_extras(wrapper, (H, W), dict(attr_classes=classes))
    assert task_meta['attr_attributes'] == dict(weather=3, scene=2) and task_meta['attr_classes'] == classes
    assert list(arrays) == ['det_anchors']
    out = ox.export_onnx(
        wrapper,
        str(tmp_path / 'attr.onnx'), (H, W),
        exporter='torchscript',
        opset=17,
        metadata=ox.export_metadata(wrapper, (H, W), dict(dataset_meta=dict(attr_classes=classes))))
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(props['mtssl_mm.attr_classes']) == classes
    img = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(3)) * 255
    stats = ox.compare_with_onnxruntime(wrapper, out, img)
    assert [s['name'] for s in stats] == names
    assert all(s['ok'] for s in stats) and stats[-1]['scale'] > 0.5, ox.format_stats(stats, ox.ATOL, ox.RTOL)
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    got = session.run(['attr_weather_logits'], {'img': img.numpy()})
    with torch.no_grad():
        x = model.data_preprocessor({'inputs': list(img), 'data_samples': None}, False)['inputs']
        want = model._forward(x)['attr']['weather']
    assert got[0].shape == (1, 3)
    np.testing.assert_allclose(got[0], want.numpy(), atol=1e-4, rtol=1e-4)


def test_a_task_without_export_outputs_is_left_out_with_a_warning():
    cfg = Config.fromfile(TINY_CONFIG)
    model, _ = ox.build_model(cfg)
    model.tasks['attr'] = NoExportAttributes(name='attr', attributes=dict(weather=3), in_channels=512)
    logger = MMLogger.get_current_instance()
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger.addHandler(handler)
    try:
        wrapper = ox.MultiTaskOnnxWrapper.from_model(model)
    finally:
        logger.removeHandler(handler)
    assert wrapper.output_names == ['det_cls_scores', 'det_bbox_deltas', 'seg_logits']
    assert any("task 'attr' (NoExportAttributes) has no export_outputs()" in m for m in messages), messages


def test_onnx_stays_optional():
    """``import mtssl_mm`` loads no ONNX package; without onnx the tool says which extra to install."""
    code = (
        "import sys; import mtssl_mm; "
        "loaded = [m for m in ('onnx', 'onnxruntime', 'onnxscript', 'mtssl_mm.deploy') if m in sys.modules]; "
        "assert not loaded, loaded; "
        "sys.modules['onnx'] = None; import mtssl_mm.deploy; "  # the package imports without onnx
        f"sys.argv = ['export_onnx.py', {TINY_CONFIG!r}, {TINY_CONFIG!r}, '/tmp/x.onnx']; "
        f"exec(open({EXPORT!r}).read())")
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'pip install -e .[deploy]' in proc.stderr
