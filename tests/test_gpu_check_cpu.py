"""tools/gpu_check.sh on the CPU: its dist_train stage (the command the GPU runs, at a tiny size, gloo), its report,
and how a failed stage or a spent budget skips what follows."""
import json
import os
import subprocess
import sys

from fixtures import REPO


def gpu_check(out, **env):
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', **env)
    proc = subprocess.run(['bash', os.path.join(REPO, 'tools', 'gpu_check.sh'),
                           str(out)],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    with open(out / 'gpu_check.json') as f:
        return proc, json.load(f)


def test_dist_train_stage_trains_on_generated_bdd100k_and_reports(tmp_path):
    proc, report = gpu_check(
        tmp_path / 'out',
        GPU_CHECK_STAGES='env dist_train',
        GPU_CHECK_DIST_ITERS='2',
        GPU_CHECK_DIST_CROP='64',
        GPU_CHECK_DIST_WORKERS='0',
        GPU_CHECK_BDD_SIZE='128x72')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report['ok'] and list(report['stages']) == ['env', 'dist_train']
    assert all(s['status'] == 'ok' and s['seconds'] > 0 for s in report['stages'].values())
    dist = report['figures']['dist_train']
    assert dist['iterations'] == 2 and dist['world_size'] == 1 and dist['backend'] == 'gloo'  # nccl on a GPU
    assert 'det.unsup.loss_cls' in dist['train'] and 'multitask/gmean' in dist['val']
    assert report['figures']['env']['cuda_available'] is False
    assert sorted(os.listdir(tmp_path / 'out')) == ['gpu_check.json', 'gpu_check.log']


def test_a_failed_stage_skips_the_stages_that_need_it(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    proc, report = gpu_check(
        tmp_path / 'out', GPU_CHECK_STAGES='install mmcv_build mmcv_check cuda_tests', GPU_WHEELHOUSE=str(empty))
    assert proc.returncode == 1 and not report['ok']
    stages = report['stages']
    assert stages['install']['status'] == 'failed' and 'no listed wheel' in stages['install']['error_tail']
    assert [stages[s]['reason'] for s in ('mmcv_build', 'mmcv_check', 'cuda_tests')
            ] == ['install did not pass', 'mmcv_build did not pass', 'mmcv_check did not pass']


def test_a_stage_without_enough_budget_left_is_skipped(tmp_path):
    proc, report = gpu_check(tmp_path / 'out', GPU_CHECK_STAGES='dist_train', GPU_CHECK_BUDGET='40')
    assert proc.returncode == 1
    assert report['stages']['dist_train']['status'] == 'skipped'
    assert report['stages']['dist_train']['reason'].startswith('no time left')
