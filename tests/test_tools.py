"""The command-line tools: train -> resume equality, test.py on one task, and a 2-process gloo run."""
import glob
import os
import os.path as osp
import signal
import socket
import subprocess
import sys

import pytest
import torch

from fixtures import REPO, TINY_CONFIG, cfg_options

TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')


def run(cmd, **kw):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return proc.stdout + proc.stderr


def params(path):
    from mtssl_mm.utils.checkpoint import load_from_local  # the package's safe loader (weights_only=True)
    ckpt = load_from_local(path, map_location='cpu')
    # the EMA weights (state_dict, EMAHook) and the raw ones with the averaged model's step (ema_state_dict)
    return dict({
        f'ema/{k}': v
        for k, v in ckpt['state_dict'].items()
    }, **{
        f'raw/{k}': v
        for k, v in ckpt['ema_state_dict'].items()
    })


def test_resume_equals_uninterrupted_run_and_test_runs_one_task(partial_root, tmp_path):
    opts = cfg_options(partial_root) + ['randomness.seed=0']
    full, resumed = str(tmp_path / 'full'), str(tmp_path / 'resumed')
    run([sys.executable, TRAIN, TINY_CONFIG, '--work-dir', full, '--cfg-options', *opts])
    # a second run that starts from the checkpoint saved after 2 of the 4 iterations
    out = run([
        sys.executable, TRAIN, TINY_CONFIG, '--work-dir', resumed, '--resume',
        osp.join(full, 'iter_2.pth'), '--cfg-options', *opts
    ])
    assert 'resumed epoch: 0, iter: 2' in out
    a, b = params(osp.join(full, 'iter_4.pth')), params(osp.join(resumed, 'iter_4.pth'))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f'{k} differs between the uninterrupted and the resumed run'
    # and the checkpoint really moved: iteration 2 and 4 differ
    c = params(osp.join(full, 'iter_2.pth'))
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())

    # tools/test.py loads the checkpoint (load_from) and evaluates detection alone
    out = run([
        sys.executable, TEST, TINY_CONFIG,
        osp.join(full, 'iter_4.pth'), '--tasks', 'det', '--work-dir',
        str(tmp_path / 'test'), '--show-dir', 'vis', '--cfg-options', *opts
    ])
    assert 'det/bbox_mAP' in out and 'seg/mIoU' not in out
    # --show-dir paints every validation image (boxes and the seg ground truth) with the visualizer
    assert len(glob.glob(str(tmp_path / 'test' / '**' / 'vis' / '*.png'), recursive=True)) == 3


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_group(cmd, env, timeout):
    """``subprocess.run(cmd)`` in a session of its own; past ``timeout`` the whole session (torchrun and its
    workers, not only the shell) is killed before ``TimeoutExpired`` is raised."""
    with subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def dist_train(args, ok=True, timeout=600):
    """``tools/dist_train.sh ARGS`` on a free port; the output. The run must succeed (``ok``), or fail (not ``ok``).

    torchrun's static rendezvous cannot bind port 0, so the port is chosen here and released before torchrun binds
    it (seconds later, after its imports): another process may take it meanwhile. Only that case - torchrun's store
    failing to listen on this very port with EADDRINUSE, before any worker ran - is retried, once, on another port;
    any other outcome than the expected one fails the test."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO, PYTHON=sys.executable)
    cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), *args]
    for attempt in range(2):
        port = free_port()
        proc = run_group(cmd, env=dict(env, PORT=str(port)), timeout=timeout)
        out = proc.stdout + proc.stderr
        taken = f'port: {port}, useIpv6: false, code: -98, name: EADDRINUSE' in out
        if proc.returncode == 0 or not taken or attempt == 1:
            break
    assert (proc.returncode == 0) == ok, \
        f'{cmd} {"failed" if ok else "succeeded"} (PORT={port}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return out


def assert_clean_exit(out):
    """Every rank exited 0 (torchrun returns 0 only if all its workers did; `dist_train` checked that) and none aborted
    at teardown. A gloo process group left to the interpreter's exit used to kill a rank after a successful run
    with "terminate called without an active exception" (SIGABRT, about 1 run in 10 under load): its worker
    threads outlived the main thread. tools/train.py now drops the Runner and destroys the group, and
    destroy_distributed checks that no gloo thread is left before the interpreter exits (rank 0 logs it, any
    rank warns otherwise), which this checks on every run, not only on the unlucky ones."""
    for sign in ('terminate called', 'SIGABRT', 'exitcode', 'ChildFailedError', 'still alive after destroy'):
        assert sign not in out, f'a rank did not exit cleanly ({sign!r}):\n{out[-5000:]}'
    assert 'Process group destroyed; no gloo thread left.' in out


def test_dist_train_two_processes_gloo(partial_root, tmp_path):
    out = dist_train([
        TINY_CONFIG, '2', '--work-dir',
        str(tmp_path), '--cfg-options', *cfg_options(partial_root), 'randomness.seed=0'
    ])
    assert 'Distributed training: True' in out
    assert 'GPU number: 2' in out  # mmengine's name for the world size
    assert osp.isfile(tmp_path / 'iter_4.pth')
    assert 'multitask/gmean' in out
    assert_clean_exit(out)


def test_dist_train_fails_promptly_when_one_rank_raises(partial_root, tmp_path):
    """Rank 1 raises in runner.train() (its train set's annotation file is missing) while rank 0 goes on into the
    collectives of training: rank 1's teardown ends its process group without a barrier (rank 0 is in a sampler
    broadcast or a DDP all-reduce, not in a barrier, and would never match it), so the run fails at once instead of
    hanging until gloo's timeout (30 minutes). tests/test_launch.py checks the teardown itself, in-process."""
    import shutil
    for rank in (0, ):  # rank 0's annotation file; rank 1's does not exist
        os.makedirs(tmp_path / f'rank{rank}')
        shutil.copy(osp.join(partial_root, 'annotations', 'train.json'), tmp_path / f'rank{rank}' / 'train.json')
    config = tmp_path / 'rank1_fails.py'
    config.write_text(f"_base_ = ['{TINY_CONFIG}']\n"  # mmengine substitutes {{$RANK:0}} in the config file
                      f"train_dataloader = dict(dataset=dict(ann_file='{tmp_path}/rank{{{{$RANK:0}}}}/train.json'))\n")
    out = dist_train(
        [str(config), '2', '--work-dir',
         str(tmp_path / 'work'), '--cfg-options', *cfg_options(partial_root)],
        ok=False,
        timeout=300)
    assert 'Distributed training: True' in out
    assert f'[rank1]: FileNotFoundError: annotation file {tmp_path}/rank1/train.json does not exist' in out, out[-5000:]


def test_reference_command_bdd100k_densefixmatch_explicit_two_processes(tmp_path):
    """`tools/dist_train.sh configs/bdd100k/densefixmatch_explicit.py 2` on a converted BDD100K-format root."""
    from official_fixtures import load_tool, write_bdd100k
    root = str(tmp_path / 'bdd100k')
    write_bdd100k(root)
    load_tool('dataset_converters/bdd100k.py').convert(root)
    small = [  # a few iterations at small resolution; everything else is the real config
        f'{k}.dataset.data_root={root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ] + [
        'model.detector.backbone.init_cfg=None', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.0.end=2', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'train_dataloader.dataset.pipeline.2.scale=(64,36)', 'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'default_hooks.logger.interval=1', 'randomness.seed=0'
    ]
    out = dist_train([
        osp.join(REPO, 'configs', 'bdd100k', 'densefixmatch_explicit.py'), '2', '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *small
    ])
    assert 'Distributed training: True' in out
    assert 'det.unsup.loss_cls' in out and 'seg.unsup.loss_ce' in out and 'det.lambda' in out
    assert osp.isfile(tmp_path / 'work' / 'iter_2.pth')
    assert 'multitask/gmean' in out
    assert_clean_exit(out)


# ------------------------------------------------------------------------------------- test.py --tasks
FIXMATCH_TINY = osp.join(REPO, 'configs', 'demo', 'fixmatch_tiny.py')


def test_tasks_flag_restricts_supervised_and_semi_supervised_configs():
    """`--tasks`: the predicting model (MultiTaskModel, or the detector that student and teacher are built from),
    the evaluator and the dataset see only the given tasks; an unknown task names the flag and the known tasks."""
    from mmengine.config import Config

    from official_fixtures import load_tool
    restrict_tasks = load_tool('test.py').restrict_tasks

    sup = Config.fromfile(TINY_CONFIG)
    restrict_tasks(sup, ['det'])
    assert sup.model.predict_tasks == ['det']
    semi = Config.fromfile(FIXMATCH_TINY)
    assert semi.model.type == 'MultiTaskSemiSupervised'
    restrict_tasks(semi, ['seg', 'seg'])
    assert semi.model.detector.predict_tasks == ['seg'] and 'predict_tasks' not in semi.model
    for cfg, tasks in ((sup, ['det']), (semi, ['seg'])):
        assert cfg.test_evaluator.tasks == tasks and cfg.test_dataloader.dataset.tasks == tuple(tasks)

    from mmdet.registry import MODELS
    model = MODELS.build(semi.model)  # both the student and the teacher predict seg only
    assert model.student.predict_tasks == model.teacher.predict_tasks == ('seg', )

    for config, known in ((TINY_CONFIG, "['det', 'seg']"), (FIXMATCH_TINY, "['det', 'seg']"),
                          (osp.join(REPO, 'configs', 'cityscapes_lowdata', 'fixmatch_implicit_det.py'), "['det']")):
        cfg = Config.fromfile(config)
        with pytest.raises(ValueError) as info:
            restrict_tasks(cfg, ['seg', 'depth'] if known == "['det']" else ['depth'])
        msg = str(info.value)
        assert msg.startswith('--tasks: unknown task(s)') and 'depth' in msg and msg.endswith(f'tasks {known}'), msg


def test_test_py_tasks_on_a_semi_supervised_config(partial_root, tmp_path):
    """tools/test.py --tasks seg on a FixMatch* config: the teacher predicts seg alone, only seg is evaluated."""
    from mmdet.registry import MODELS

    import mtssl_mm  # noqa: F401
    from fixtures import tiny_cfg
    cfg = tiny_cfg(partial_root, str(tmp_path), config=FIXMATCH_TINY)
    ckpt = str(tmp_path / 'semi.pth')
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict(), meta=dict()), ckpt)
    opts = cfg_options(partial_root)
    out = run([
        sys.executable, TEST, FIXMATCH_TINY, ckpt, '--tasks', 'seg', '--work-dir',
        str(tmp_path / 'test'), '--cfg-options', *opts
    ])
    assert 'seg/mIoU' in out and 'det/bbox_mAP' not in out
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    bad = subprocess.run([sys.executable, TEST, FIXMATCH_TINY, ckpt, '--tasks', 'depth', '--cfg-options', *opts],
                         cwd=REPO,
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert bad.returncode != 0
    assert "--tasks: unknown task(s) ['depth']; the model (MultiTaskSemiSupervised) has the tasks ['det', 'seg']" \
        in bad.stderr, bad.stderr[-3000:]


def test_destroy_distributed_is_a_no_op_without_a_process_group():
    from mtssl_mm.utils.dist import destroy_distributed
    assert destroy_distributed() is False
