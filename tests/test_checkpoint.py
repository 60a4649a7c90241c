"""Checkpoints load with weights_only=True and an allowlist; a malicious pickle never runs; keys must fit the model."""
import os.path as osp
import pickle
import shutil
from collections import OrderedDict

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseTTAModel
from mmengine.model.weight_init import PretrainedInit
from mmengine.runner import Runner
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, load_checkpoint

import mtssl_mm  # noqa: F401  (registers the safe loaders)
from mtssl_mm.models.state_dict_check import CheckpointKeysError
from mtssl_mm.utils.checkpoint import UnsafeCheckpointError, load_from_http, load_from_local, safe_torch_load
from fixtures import REPO, TINY_CONFIG, tiny_cfg

SEMI_CONFIG = osp.join(REPO, 'configs', 'demo', 'densefixmatch_tiny.py')
REFUSED = 'checkpoint not loaded, because unpickling it could run code'


class Payload:
    """Unpickling this runs ``exec``, which writes ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')", )


def evil_checkpoint(tmp_path, name='evil.pth'):
    marker = str(tmp_path / f'{name}.ran')
    path = str(tmp_path / name)
    torch.save({'state_dict': OrderedDict(w=torch.zeros(2)), 'meta': {'x': Payload(marker)}}, path)
    return path, marker


def build(config, tasks=None):
    cfg = Config.fromfile(config)
    if tasks is not None:
        detector = cfg.model.get('detector', cfg.model)
        detector.tasks = {t: detector.tasks[t] for t in tasks}
    return MODELS.build(cfg.model)


def assert_same(a, b, path='checkpoint'):
    """Deep equality of two loaded checkpoints (tensors bit-exact, numpy values with their dtypes)."""
    assert type(a) is type(b), (path, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            assert_same(a[k], b[k], f'{path}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{path}[{i}]')
    elif isinstance(a, HistoryBuffer):  # pickling adds the class's statistics methods to the instance
        assert_same(*({k: v for k, v in vars(x).items() if k != 'statistics_methods'} for x in (a, b)), path)
    else:
        assert a == b, (path, a, b)


# ------------------------------------------------------------------------------------------- unsafe pickles
def test_malicious_pickle_is_refused_by_every_mmengine_loader_and_never_runs(tmp_path):
    path, marker = evil_checkpoint(tmp_path)
    model = build(TINY_CONFIG)
    loads = {
        'CheckpointLoader.load_checkpoint': lambda: CheckpointLoader.load_checkpoint(path),
        '_load_checkpoint (Runner.load_checkpoint: load_from, --resume)': lambda: _load_checkpoint(path, 'cpu'),
        'load_checkpoint': lambda: load_checkpoint(model, path, map_location='cpu'),
        'Pretrained init_cfg': lambda: PretrainedInit(checkpoint=path)(model),
        'safe_torch_load': lambda: safe_torch_load(path),
    }
    for name, load in loads.items():
        with pytest.raises(UnsafeCheckpointError) as info:
            load()
        msg = str(info.value)
        assert msg.startswith(f'{path}: {REFUSED}') and "['builtins.exec']" in msg, (name, msg)
        assert not osp.exists(marker), f'{name} ran the payload'
    # the payload is real: a full unpickle runs it
    torch.load(path, weights_only=False)
    assert open(marker).read() == 'ran'


def test_getattr_in_a_checkpoint_reaches_history_buffer_statistics_only(tmp_path):
    """HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, name): that and nothing else loads."""
    good, bad = str(tmp_path / 'good.pth'), str(tmp_path / 'bad.pth')
    torch.save({'m': HistoryBuffer.mean, 'buf': HistoryBuffer([1.0, 2.0], [1, 1])}, good)
    torch.save({'m': HistoryBuffer.update}, bad)  # getattr(HistoryBuffer, 'update'): not a statistic
    assert 'builtins.getattr' in torch.serialization.get_unsafe_globals_in_checkpoint(good)
    loaded = load_from_local(good)
    assert loaded['m'] is HistoryBuffer.mean and loaded['buf'].mean() == 1.5
    with pytest.raises(
            UnsafeCheckpointError,
            match=r"getattr\(<class 'mmengine.logging.history_buffer."
            r"HistoryBuffer'>, 'update'\) is not allowed"):
        load_from_local(bad)
    # the allowlist is active only while mmengine loads: plain torch.load keeps torch's own list
    with pytest.raises(pickle.UnpicklingError):
        torch.load(good, weights_only=True)
    assert not any(getattr(g, '__module__', '').startswith('mtssl_mm') for g in torch.serialization.get_safe_globals())


def test_every_scheme_loads_weights_only(tmp_path, monkeypatch):
    """http(s)://, open-mmlab:// and torchvision:// read torch hub's cache with weights_only=True (mmengine's own
    http loader passes weights_only=False): a cached malicious file is refused, a cached Runner-like one loads."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    cache = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    assert all(getattr(loader, '_mtssl_mm_safe', False) for loader in CheckpointLoader._schemes.values())
    assert mmengine_checkpoint.load_from_http is load_from_http
    monkeypatch.setattr(mmengine_checkpoint, 'get_torchvision_models',
                        lambda: dict(resnet50='https://download.example/resnet50-0000.pth'))
    open_mmlab_url = mmengine_checkpoint.get_external_models()['resnet50_v1c']
    uris = {
        'https://download.example/evil.pth': 'evil.pth',
        'open-mmlab://resnet50_v1c': osp.basename(open_mmlab_url),
        'torchvision://resnet50': 'resnet50-0000.pth'
    }
    for uri, cached in uris.items():
        path, marker = evil_checkpoint(tmp_path, cached)
        shutil.copy(path, cache / cached)
        with pytest.raises(UnsafeCheckpointError, match=REFUSED):
            CheckpointLoader.load_checkpoint(uri)
        assert not osp.exists(marker), uri
    ok = {
        'state_dict': OrderedDict(w=torch.ones(3)),
        'message_hub': {
            'best': np.float64(0.5),
            'n': np.int64(3)
        },
        'hist': HistoryBuffer([0.25], [1])
    }
    torch.save(ok, cache / 'ok.pth')
    loaded = CheckpointLoader.load_checkpoint('http://download.example/ok.pth')
    assert_same(dict(loaded), ok)


@pytest.mark.parametrize('config', [TINY_CONFIG, SEMI_CONFIG], ids=['supervised', 'semi'])
def test_runner_checkpoints_load_weights_only_and_equal_a_full_unpickle(partial_root, tmp_path, config):
    """A real checkpoint (message hub, EMA teacher, RNG-state hook, best score) needs exactly the allowlisted
    globals, loads bit-exact, and loads back into its model through Runner.load_checkpoint."""
    cfg = tiny_cfg(partial_root, str(tmp_path), config=config)
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = cfg.param_scheduler[0].end = 1
    cfg.default_hooks.checkpoint.interval = 1
    runner = Runner.from_cfg(cfg)
    runner.train()
    path = str(tmp_path / 'iter_1.pth')
    assert sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path)) == [
        'builtins.getattr', 'mmengine.logging.history_buffer.HistoryBuffer', 'numpy._core.multiarray._reconstruct',
        'numpy._core.multiarray.scalar', 'numpy.dtype', 'numpy.ndarray'
    ]
    full = torch.load(path, map_location='cpu', weights_only=False)
    safe = load_from_local(path, map_location='cpu')
    assert_same(dict(safe), full)
    assert 'torch_rng_state' in safe['meta'] and 'best_score' in safe['message_hub']['runtime_info']
    with torch.no_grad():
        for p in runner.model.parameters():
            p.zero_()
    runner.load_checkpoint(path)
    for k, v in runner.model.state_dict().items():
        assert torch.equal(v, full['state_dict'][k]), k


# ------------------------------------------------------------------------------------------ keys must fit
def test_keys_that_do_not_fit_raise_through_mmengine_non_strict_loaders(tmp_path):
    sup, semi, det_only = build(TINY_CONFIG), build(SEMI_CONFIG), build(TINY_CONFIG, tasks=['det'])
    det_path = str(tmp_path / 'det_only.pth')
    torch.save({'state_dict': det_only.state_dict()}, det_path)
    for model in (sup, semi):
        with pytest.raises(CheckpointKeysError) as info:
            load_checkpoint(model, det_path, map_location='cpu', logger='silent')
        msg = str(info.value)
        assert msg.startswith(f'{det_path}: the checkpoint') and f'fit {type(model).__name__}' in msg
        assert 'missing (tasks.seg.' in msg and 'unexpected' not in msg, msg
    extra = OrderedDict(sup.state_dict(), **{'tasks.depth.head.weight': torch.zeros(1)})
    with pytest.raises(CheckpointKeysError, match=r'1 unexpected \(tasks\.depth\.head\.weight\)'):
        load_checkpoint(sup, _save(tmp_path, extra), logger='silent')
    with pytest.raises(CheckpointKeysError, match=r'missing'):  # an empty state dict is not "nothing to do"
        sup.load_state_dict({}, strict=False)


def _save(tmp_path, state_dict):
    path = str(tmp_path / 'extra.pth')
    torch.save({'state_dict': state_dict}, path)
    return path


def test_semi_checkpoint_into_supervised_model_names_the_export_tool(tmp_path):
    sup, semi = build(TINY_CONFIG), build(SEMI_CONFIG)
    path = str(tmp_path / 'semi.pth')
    torch.save({'state_dict': semi.state_dict()}, path)
    with pytest.raises(CheckpointKeysError) as info:
        load_checkpoint(sup, path, logger='silent')
    assert f'python tools/export_teacher.py {path} <out.pth>' in str(info.value)
    with pytest.raises(CheckpointKeysError, match=r'tools/export_teacher.py <ckpt> <out.pth>'):
        sup.load_state_dict(semi.state_dict())  # no file: the message says <ckpt>


class Wrapper(torch.nn.Module):
    """DDP-like: the model under ``module.``, plus a parameter of its own."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.scale = torch.nn.Parameter(torch.ones(1))


class TTA(BaseTTAModel):

    def merge_preds(self, data_samples_list):
        return data_samples_list


def test_key_check_works_at_any_prefix_and_plain_checkpoints_still_fill_student_and_teacher(tmp_path):
    sup = build(TINY_CONFIG)
    with torch.no_grad():
        for p in sup.parameters():
            p.normal_()
    # torch's loader on a wrapper: the model's keys are under 'module.'
    wrapped = Wrapper(build(SEMI_CONFIG))
    state = OrderedDict({'scale': torch.full((1, ), 2.0)}, **{f'module.{k}': v for k, v in sup.state_dict().items()})
    wrapped.load_state_dict(state, strict=True)
    for k, v in sup.state_dict().items():
        assert torch.equal(wrapped.module.student.state_dict()[k], v) and torch.equal(
            wrapped.module.teacher.state_dict()[k], v)
    del state['module.backbone.conv1.weight']
    with pytest.raises(
            CheckpointKeysError,
            match=r"fit MultiTaskSemiSupervised \(at 'module.'\): 1 missing "
            r'\(backbone.conv1.weight\)'):
        Wrapper(build(SEMI_CONFIG)).load_state_dict(state, strict=False)
    # mmengine's loader unwraps a TTA model: a plain checkpoint loads into its module, a wrong one raises
    path = str(tmp_path / 'sup.pth')
    torch.save({'state_dict': sup.state_dict()}, path)
    tta = TTA(module=build(TINY_CONFIG))
    load_checkpoint(tta, path, logger='silent')
    assert torch.equal(tta.module.backbone.conv1.weight, sup.backbone.conv1.weight)
    with pytest.raises(CheckpointKeysError, match='missing'):
        load_checkpoint(
            TTA(module=build(TINY_CONFIG)), _save(tmp_path,
                                                  build(TINY_CONFIG, ['det']).state_dict()), logger='silent')
