"""tools/export_teacher.py: a trained semi-supervised checkpoint -> a MultiTaskModel checkpoint of its EMA teacher."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_checkpoint

import mtssl_mm  # noqa: F401
from mtssl_mm.models.state_dict_check import CheckpointKeysError
from mtssl_mm.utils.checkpoint import load_from_local
from fixtures import REPO, TINY_CONFIG, cfg_options, tiny_cfg
from official_fixtures import load_tool

SEMI_CONFIG = osp.join(REPO, 'configs', 'demo', 'densefixmatch_tiny.py')
EXPORT = osp.join(REPO, 'tools', 'export_teacher.py')


def run(cmd):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def semi_ckpt(partial_root, tmp_path_factory):
    """Dense FixMatch (tiny) trained for 1 iteration (no validation) with the EMA teacher hook: its iter_1.pth."""
    work = str(tmp_path_factory.mktemp('semi'))
    cfg = tiny_cfg(partial_root, work, config=SEMI_CONFIG)
    cfg.train_cfg.max_iters = cfg.param_scheduler[0].end = cfg.default_hooks.checkpoint.interval = 1
    cfg.train_cfg.val_interval = 100
    cfg.randomness = dict(seed=0)
    Runner.from_cfg(cfg).train()
    return osp.join(work, 'iter_1.pth')


def test_exported_teacher_loads_strictly_into_the_supervised_config_and_evaluates(semi_ckpt, partial_root, tmp_path):
    out = str(tmp_path / 'export' / 'teacher.pth')
    proc = run([sys.executable, EXPORT, semi_ckpt, out])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'{out}: the teacher of {semi_ckpt}' in proc.stdout
    source, exported = load_from_local(semi_ckpt), load_from_local(out)
    assert set(exported) == {'state_dict', 'meta'}  # no optimizer, message hub, schedulers
    meta = exported['meta']
    assert meta['dataset_meta'] == source['meta']['dataset_meta'] and 'torch_rng_state' not in meta
    assert meta['exported_from']['branch'] == 'teacher' and meta['exported_from']['checkpoint'] == semi_ckpt

    teacher = {k[len('teacher.'):]: v for k, v in source['state_dict'].items() if k.startswith('teacher.')}
    student = {k[len('student.'):]: v for k, v in source['state_dict'].items() if k.startswith('student.')}
    assert any(not torch.equal(teacher[k], student[k]) for k in teacher), 'the EMA teacher should differ'
    sup = MODELS.build(Config.fromfile(TINY_CONFIG).model)
    result = sup.load_state_dict(exported['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    load_checkpoint(sup, out, map_location='cpu', strict=True, logger='silent')  # mmengine: raises on any mismatch
    assert sup.state_dict().keys() == teacher.keys()
    for k, v in sup.state_dict().items():
        assert torch.equal(v, teacher[k]), k

    # --student exports the other branch
    stud = load_tool('export_teacher.py').export(semi_ckpt, str(tmp_path / 'student.pth'), 'student')
    assert stud['state_dict'].keys() == student.keys()
    assert all(torch.equal(stud['state_dict'][k], v) for k, v in student.items())

    # the supervised config evaluates the exported teacher (tools/test.py: load_from)
    proc = run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), TINY_CONFIG, out, '--work-dir',
        str(tmp_path / 'test'), '--cfg-options', *cfg_options(partial_root)
    ])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'multitask/gmean' in proc.stdout + proc.stderr


def test_raw_semi_checkpoint_into_the_supervised_config_names_the_export_tool(semi_ckpt, partial_root, tmp_path):
    runner = Runner.from_cfg(tiny_cfg(partial_root, str(tmp_path), config=TINY_CONFIG))
    runner.call_hook('before_run')  # as runner.test() and runner.train() do first (EMAHook builds its copy there)
    with pytest.raises(CheckpointKeysError) as info:
        runner.load_checkpoint(semi_ckpt)  # what load_from and tools/test.py call; mmengine would only warn
    msg = str(info.value)
    assert msg.startswith(f'{semi_ckpt}: a semi-supervised checkpoint') and 'into MultiTaskModel' in msg, msg
    assert msg.endswith(f'python tools/export_teacher.py {semi_ckpt} <out.pth>'), msg


def test_bad_inputs_stop_with_one_clear_line(semi_ckpt, tmp_path, capsys):
    tool = load_tool('export_teacher.py')
    missing = str(tmp_path / 'missing.pth')
    assert tool.main([missing, str(tmp_path / 'x.pth')]) == 2
    assert capsys.readouterr().err == f'export_teacher.py: error: checkpoint file {missing} does not exist\n'
    sup = str(tmp_path / 'sup.pth')
    torch.save({'state_dict': MODELS.build(Config.fromfile(TINY_CONFIG).model).state_dict()}, sup)
    assert tool.main([sup, str(tmp_path / 'x.pth')]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'export_teacher.py: error: {sup}: not a semi-supervised checkpoint'), err
    assert 'loads as it is' in err and err.count('\n') == 1, err
    assert tool.main([semi_ckpt, semi_ckpt]) == 2
    assert 'would overwrite the input checkpoint' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'x.pth')
