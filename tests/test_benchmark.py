"""tools/benchmark.py --quick: every measurement is taken and reported."""
import json
import math
import os.path as osp
import subprocess
import sys

import pytest

from fixtures import REPO


def test_quick_benchmark_reports_every_part(tmp_path):
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'benchmark.py'), '--quick', '--out',
         str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.load(open(tmp_path / 'benchmark.json'))
    steps = res['train_step']
    for name in ('supervised', 'fixmatch', 'densefixmatch'):
        parts = steps[name]
        assert parts['total'] > 0 and math.isclose(
            parts['total'],
            sum(v for k, v in parts.items() if k not in ('total', 'non_pass_share', 'ratio_to_supervised')),
            rel_tol=1e-6)
        assert 0 <= parts['non_pass_share'] < 1
    # only the semi-supervised steps run a teacher, a strong augmentation and an EMA update
    assert steps['supervised']['teacher_forward'] == steps['supervised']['ema'] == 0
    for name in ('fixmatch', 'densefixmatch'):
        assert steps[name]['teacher_forward'] > 0 and steps[name]['strong_aug'] > 0 and steps[name]['ema'] > 0
        assert steps[name]['ratio_to_supervised'] > 1
    # Dense FixMatch's two student batches: B = 2 labeled + 2 unlabeled (explicit); 1 labeled of 4 (sparse)
    views = {
        name: (v['student_views'], v['weak_views'], v['strong_views'])
        for name, v in steps['student_batch'].items()
    }
    assert views == {
        'densefixmatch': ('all', 4, 4),
        'densefixmatch_needed': ('needed', 2, 2),
        'densefixmatch_sparse': ('all', 4, 4),
        'densefixmatch_sparse_needed': ('needed', 1, 3)
    }
    assert steps['student_batch']['densefixmatch_sparse_needed']['strong_share'] == 0.75
    assert all(steps[name]['total'] > 0 and steps['student_batch'][name]['step_s'] == steps[name]['total']
               for name in views)
    assert res['strong_aug']['batch_images_per_s'] > 0 and res['strong_aug']['per_image_cpu_images_per_s'] > 0
    assert 0 < res['inference']['ratio_multitask_to_separate'] and 0 < res['inference']['expected_ratio'] < 1
    assert res['dataloader']['workers_0'] > 0 and res['dataloader']['train_steps_per_s'] > 0
    assert res['ema']['foreach_ms'] > 0 and res['ema']['loop_ms'] > 0
    assert res['anchors']['anchors'] > 0 and res['anchors']['plain_ms'] > 0 and res['anchors']['cached_ms'] > 0
    md = (tmp_path / 'benchmark.md').read_text()
    assert '| student_forward |' in md and 'Strong augmentation' in md and 'EMA update' in md and 'Anchors' in md
    assert "1b. Dense FixMatch's student batch" in md and '| needed | 1 + 3 | 75 % |' in md


def test_benchmark_takes_its_data_from_the_package_and_its_transforms_by_type():
    """The data-loader benchmark writes the package's toy data set (the one the tests import as ``toy_data``, not
    tests/ on sys.path) and sizes the training pipeline's RandomResize and RandomCrop found by type."""
    from mmengine.config import Config

    import mtssl_mm.utils.toy_data
    import toy_data
    from official_fixtures import load_tool
    bench = load_tool('benchmark.py')
    assert bench.write_dataset is toy_data.write_dataset is mtssl_mm.utils.toy_data.write_dataset  # one copy
    config = bench.CONFIGS['densefixmatch'][0]
    pipeline = Config.fromfile(osp.join(REPO, config)).train_dataloader.dataset.pipeline
    types = [t['type'] for t in pipeline]
    bench.set_crop(pipeline, 64, config)
    resize, crop = pipeline[types.index('RandomResize')], pipeline[types.index('RandomCrop')]
    assert resize.scale == (128, 64) and crop.crop_size == (64, 64)
    # a pipeline without the transform: the error names the config, where, and the missing type
    with pytest.raises(KeyError, match=f'{config}: train_dataloader.dataset.pipeline has no RandomCrop'):
        bench.set_crop([t for t in pipeline if t['type'] != 'RandomCrop'], 64, config)
