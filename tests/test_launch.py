"""The prelude and teardown tools/train.py and tools/test.py share (mtssl_mm/utils/launch.py): the process group is
destroyed after the run, also when the run raises, and the Runner is dropped before; the config prelude; lookups
by type in a config's lists."""
import argparse
import os.path as osp
import weakref

import pytest
import torch.distributed as dist
from mmengine.config import Config

from mtssl_mm.utils import launch
from fixtures import TINY_CONFIG
from official_fixtures import load_tool


@pytest.fixture
def gloo_group():
    """A one-process gloo group on an in-memory store (no port), as setup_cpu_distributed leaves one; whatever the
    test did, none is left after it."""
    dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


class FakeRunner:
    """Stands in for mmengine's Runner: ``train``/``test`` see the process group, then fail or not."""

    def __init__(self, fail):
        self.fail = fail

    def train(self):
        assert dist.is_initialized(), 'the run should see the process group'
        if self.fail:
            raise RuntimeError('the run failed')

    test = train


@pytest.fixture
def runners(monkeypatch):
    """Every Runner the tools build is a FakeRunner (``fail`` set by the test); weak references to them."""
    made = dict(fail=False, refs=[])

    def build(cfg):
        runner = FakeRunner(made['fail'])
        made['refs'].append(weakref.ref(runner))
        return runner

    monkeypatch.setattr(launch, 'build_runner', build)
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse_launch_args sets it where the launcher did not
    return made


@pytest.fixture
def teardowns(monkeypatch):
    """The calls of destroy_distributed / abort_distributed: (name, what it returned)."""
    calls = []
    for name in ('destroy_distributed', 'abort_distributed'):
        real = getattr(launch, name)

        def spy(real=real, name=name):
            return_value = real()
            calls.append((name, return_value))
            return return_value

        monkeypatch.setattr(launch, name, spy)
    return calls


def tool_argv(tool, tmp_path):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')  # tools/test.py checks that it exists; the fake Runner loads nothing
    return [TINY_CONFIG] + ([str(checkpoint)] if tool == 'test.py' else
                            []) + ['--work-dir', str(tmp_path / 'work'), '--launcher', 'pytorch']


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_tool_destroys_the_process_group_when_the_run_raises(tool, gloo_group, runners, teardowns, tmp_path):
    runners['fail'] = True
    with pytest.raises(RuntimeError, match='the run failed'):
        load_tool(tool).main(tool_argv(tool, tmp_path))
    assert len(runners['refs']) == 1, 'the tool built no Runner'
    assert not dist.is_initialized(), f'tools/{tool}: the process group outlived a run that raised'
    # no barrier after an exception (a rank blocked in a collective would never reach it): aborted
    assert teardowns == [('abort_distributed', True)]


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_tool_drops_the_runner_then_destroys_the_process_group(tool, gloo_group, runners, monkeypatch, tmp_path):
    """After a successful run: the barrier-and-destroy teardown, once the Runner (whose DDP model holds the group)
    is gone; the abort that follows it finds nothing left."""
    calls = []
    real_destroy, real_abort = launch.destroy_distributed, launch.abort_distributed

    def destroy():
        calls.append(('destroy_distributed', [ref() is None for ref in runners['refs']]))
        return real_destroy()

    def abort():
        calls.append(('abort_distributed', real_abort()))

    monkeypatch.setattr(launch, 'destroy_distributed', destroy)
    monkeypatch.setattr(launch, 'abort_distributed', abort)
    load_tool(tool).main(tool_argv(tool, tmp_path))
    assert calls == [('destroy_distributed', [True]), ('abort_distributed', False)]
    assert not dist.is_initialized()


class FailingRunner:
    """A Runner whose run raises, process group or not."""

    def train(self):
        raise RuntimeError('the run failed')


class DDPRunner(FailingRunner):
    """A failing Runner whose DDP model holds the process group, as mmengine's does."""

    def __init__(self):
        import torch
        self.model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
        self.model(torch.ones(1, 2)).sum().backward()  # the reducer's all-reduce starts gloo's threads


@pytest.mark.skipif(not osp.isdir('/proc/self/task'), reason='gloo_threads reads /proc (Linux)')
def test_no_gloo_thread_outlives_a_distributed_run_that_raised(gloo_group, monkeypatch):
    """The traceback's frames hold the Runner, hence its DDP model, hence the group: run_runner clears them, so
    the group's threads end when it is ended; the traceback still prints every frame."""
    import traceback

    from mtssl_mm.utils.dist import gloo_threads
    monkeypatch.setattr(launch, 'build_runner', lambda cfg: DDPRunner())
    with pytest.raises(RuntimeError, match='the run failed') as info:
        launch.run_runner(Config(), 'pytorch', 'train')
    assert not dist.is_initialized()
    assert gloo_threads() == [], 'gloo threads outlived the process group (the Runner is still referenced)'
    text = ''.join(traceback.format_exception(info.value))
    assert 'in _run' in text and 'getattr(runner, mode)()' in text and "raise RuntimeError('the run failed')" in text


def test_a_run_without_process_group_keeps_the_traceback_locals(monkeypatch):
    """No process group to end: the frames keep their locals (a post-mortem debugger sees the Runner)."""
    monkeypatch.setattr(launch, 'build_runner', lambda cfg: FailingRunner())
    with pytest.raises(RuntimeError, match='the run failed') as info:
        launch.run_runner(Config(), 'none', 'train')
    tb, frames = info.value.__traceback__, {}
    while tb is not None:
        frames[tb.tb_frame.f_code.co_name] = tb.tb_frame.f_locals
        tb = tb.tb_next
    assert isinstance(frames['_run']['runner'], FailingRunner)


def test_distributed_run_ends_the_group_on_any_exit(gloo_group, monkeypatch):
    for exc in (RuntimeError('boom'), KeyboardInterrupt()):
        if not dist.is_initialized():
            dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
        with pytest.raises(type(exc)):
            with launch.distributed_run(Config(), 'none'):
                raise exc
        assert not dist.is_initialized(), type(exc)

    # the teardown after a successful run raising (a barrier another rank never reaches): the group still ends
    def failing_destroy():
        raise RuntimeError('barrier failed')

    monkeypatch.setattr(launch, 'destroy_distributed', failing_destroy)
    dist.init_process_group('gloo', store=dist.HashStore(), rank=0, world_size=1)
    with pytest.raises(RuntimeError, match='barrier failed'):
        with launch.distributed_run(Config(), 'none'):
            pass
    assert not dist.is_initialized()


def test_teardown_is_a_no_op_without_a_process_group():
    assert not dist.is_initialized()
    with launch.distributed_run(Config(), 'none'):
        pass
    assert launch.abort_distributed() is False


# ------------------------------------------------------------------------------------------------ prelude
def args_for(config, work_dir=None, cfg_options=None, launcher='none'):
    return argparse.Namespace(config=config, work_dir=work_dir, cfg_options=cfg_options, launcher=launcher)


def test_load_config_work_dir_priority_and_cfg_options(tmp_path):
    cfg = launch.load_config(args_for(TINY_CONFIG, cfg_options={'train_cfg.max_iters': 7}, launcher='pytorch'))
    assert cfg.train_cfg.max_iters == 7 and cfg.launcher == 'pytorch'
    assert cfg.work_dir == osp.join('./work_dirs', 'supervised_tiny')  # the config sets none: its name
    assert launch.load_config(args_for(TINY_CONFIG, work_dir=str(tmp_path))).work_dir == str(tmp_path)  # CLI
    own = tmp_path / 'own.py'
    own.write_text(f"_base_ = ['{TINY_CONFIG}']\nwork_dir = 'from_config'\n")
    assert launch.load_config(args_for(str(own))).work_dir == 'from_config'  # the config's own
    assert launch.load_config(args_for(str(own), work_dir='cli')).work_dir == 'cli'


def test_load_config_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='config file nope.py does not exist'):
        launch.load_config(args_for('nope.py'))
    with pytest.raises(FileNotFoundError, match=f'checkpoint {tmp_path}/x.pth does not exist'):
        launch.load_config(args_for(TINY_CONFIG), required=[(str(tmp_path / 'x.pth'), 'checkpoint')])


def test_launch_args_are_mmdets():
    parser = launch.add_launch_args(argparse.ArgumentParser())
    args = parser.parse_args(['--cfg-options', 'a.b=1', '--launcher', 'pytorch', '--local-rank', '3'])
    assert args.cfg_options == {'a.b': 1} and args.launcher == 'pytorch' and args.local_rank == 3
    with pytest.raises(SystemExit):
        parser.parse_args(['--launcher', 'ssh'])


# ---------------------------------------------------------------------------------------- lookups by type
def test_index_of_type_finds_one_entry_by_type_or_says_what_is_missing():
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='mmdet.RandomResize'),
        dict(type='RandomCrop'),
        dict(type=FakeRunner)
    ]
    assert launch.index_of_type(pipeline, 'RandomResize', 'a.py', 'pipeline') == 1  # the scope does not count
    assert launch.index_of_type(pipeline, 'RandomCrop', 'a.py', 'pipeline') == 2
    assert launch.index_of_type(pipeline, 'FakeRunner', 'a.py', 'pipeline') == 3  # a class as type
    with pytest.raises(KeyError) as info:
        launch.index_of_type(pipeline, 'RandomFlip', 'configs/x.py', 'train_dataloader.dataset.pipeline')
    assert info.value.args[0] == ("configs/x.py: train_dataloader.dataset.pipeline has no RandomFlip (its types: "
                                  "['LoadImageFromFile', 'RandomResize', 'RandomCrop', 'FakeRunner'])")
    with pytest.raises(ValueError, match=r'a.py: pipeline has 2 entries of type RandomCrop \(positions \[2, 4\]\)'):
        launch.index_of_type(pipeline + [dict(type='RandomCrop')], 'RandomCrop', 'a.py', 'pipeline')
