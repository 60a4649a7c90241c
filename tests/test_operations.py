"""Operations: TensorBoard receives what the JSON scalars file receives; tools/slurm_test.sh forwards to test.py."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

from fixtures import REPO, TINY_CONFIG, cfg_options


def run(cmd, env=None):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO, **(env or {}))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return proc.stdout + proc.stderr


def read_scalars_json(path):
    """tag -> {step: value} from mmengine's LocalVisBackend ``scalars.json`` (one JSON object per line)."""
    out = {}
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            step = entry.pop('step')
            for tag, value in entry.items():
                if isinstance(value, (int, float)):
                    out.setdefault(tag, {})[step] = float(value)
    return out


def read_event_file(path):
    """tag -> {step: value} from a TensorBoard event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(path, size_guidance={'scalars': 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()['scalars']}


def test_tensorboard_gets_the_training_and_validation_scalars(partial_root, tmp_path):
    """The default runtime logs to TensorBoard as well as to vis_data/scalars.json, with the same values."""
    run([
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'), TINY_CONFIG, '--work-dir',
        str(tmp_path), '--cfg-options', *cfg_options(partial_root), 'randomness.seed=0'
    ])
    events = glob.glob(str(tmp_path / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert len(events) == 1, f'expected one TensorBoard event file, found {events}'
    (scalars_json, ) = glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))
    board, local = read_event_file(events[0]), read_scalars_json(scalars_json)
    # training: the total loss, each task's loss terms, the learning rate; validation: each task and the gmean
    for tag in ('loss', 'lr', 'det.loss_cls', 'det.loss_bbox', 'seg.loss_ce', 'det/bbox_mAP', 'seg/mIoU',
                'multitask/gmean'):
        assert tag in board, f'{tag} missing from TensorBoard (has {sorted(board)})'
        assert board[tag].keys() == local[tag].keys(), tag
        for step, value in local[tag].items():
            assert abs(board[tag][step] - value) <= 1e-5 * max(1.0, abs(value)), (tag, step)
    assert sorted(board['loss']) == [1, 2, 3, 4]


def test_slurm_test_forwards_to_test_py(tmp_path):
    """tools/slurm_test.sh runs srun with one task per GPU and tools/test.py CONFIG CKPT --launcher slurm ARGS."""
    fake = tmp_path / 'bin'
    fake.mkdir()
    log = tmp_path / 'srun_args'
    (fake / 'srun').write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {log}\n')
    (fake / 'srun').chmod(0o755)
    run(['bash',
         osp.join(REPO, 'tools', 'slurm_test.sh'), 'gpu_part', 'job1', 'cfg.py', 'ckpt.pth', '--tasks', 'det'],
        env=dict(PATH=f'{fake}:{os.environ["PATH"]}', GPUS='16', GPUS_PER_NODE='8'))
    args = log.read_text().split('\n')
    assert args[:2] == ['-p', 'gpu_part'] and '--job-name=job1' in args and '--ntasks=16' in args
    assert '--ntasks-per-node=8' in args and '--gres=gpu:8' in args
    tail = args[args.index('python'):]
    assert tail[:2] == ['python', '-u'] and tail[2].endswith('tools/test.py')
    assert tail[3:8] == ['cfg.py', 'ckpt.pth', '--launcher=slurm', '--tasks', 'det']
