"""The bodies of tests/test_cuda.py on the CPU against the CPU: the comparisons run, and give no difference.

Where there is no GPU this is all that can be checked of them: that the code runs, that identical inputs compare
equal, and that each comparison does see a difference when there is one.
"""
import pytest
import torch

from mtssl_mm.augmentation import GEOMETRIC_OPS, PHOTOMETRIC_OPS
from cuda_checks import (BOX_ATOL, IMG_ATOL, dense_fixmatch_amp_step, fixed_model, image_difference, match_detections,
                         predict_batch, predict_on, strong_augment_pair, sync_bn_step, toy_batch)


@pytest.mark.parametrize('geometric', [True, False])
def test_strong_augment_pair_on_one_device_is_identical(geometric):
    out = strong_augment_pair(dict(type='StrongAugment', geometric=geometric), ['cpu', 'cpu:0'], n=4, h=32, w=48)
    (a, m_a), (b, m_b) = out['cpu'], out['cpu:0']
    assert torch.equal(m_a, m_b) and image_difference(a, b) == dict(max_abs=0.0, fraction_over_atol=0.0)
    if geometric:  # the draws do move the geometry, so the matrix comparison compares something
        assert not torch.equal(m_a, torch.eye(3).expand_as(m_a))
    shifted = b.clone()
    shifted[0, 0, 0, 0] += 2 * IMG_ATOL
    assert image_difference(a, shifted)['fraction_over_atol'] == pytest.approx(1 / a.numel())


@pytest.mark.parametrize('op', PHOTOMETRIC_OPS + GEOMETRIC_OPS)
def test_each_op_alone_builds_and_compares_equal_on_one_device(op):
    out = strong_augment_pair(dict(type='StrongAugment', ops=(op, ), num_ops=1), ['cpu', 'cpu:0'], n=4, h=32, w=48)
    (a, m_a), (b, m_b) = out['cpu'], out['cpu:0']
    assert torch.equal(m_a, m_b) and image_difference(a, b)['max_abs'] == 0.0


def test_dense_fixmatch_step_under_cpu_bf16_autocast(tmp_path):
    res = dense_fixmatch_amp_step('cpu', torch.bfloat16, toy_batch(str(tmp_path)))
    assert res['pseudo_boxes_per_img'] > 0
    assert all(torch.isfinite(torch.tensor(v)) for v in res['losses'].values())
    assert res['params'] > 0 and not res['no_grad'] and not res['non_finite_grad'], res


def test_predict_comparison_matches_itself_and_sees_a_moved_box():
    model, batch = fixed_model(), predict_batch()
    a, b = predict_on(model, batch, 'cpu'), predict_on(model, batch, 'cpu')
    for ra, rb in zip(a, b):
        m = match_detections(ra, rb)
        assert 0 < m['count_a'] == m['matched'] == m['count_b'] and m['max_box_diff'] == 0, m
        assert m['seg_fraction_differing'] == 0
        assert len(ra['seg'].unique()) > 1  # the fixed model's seg map is not one class
    moved = dict(a[0], bboxes=a[0]['bboxes'].clone())
    moved['bboxes'][0, 0] += 2 * BOX_ATOL
    m = match_detections(a[0], moved)
    assert m['unmatched_a'] == m['unmatched_b'] == 1


def test_sync_bn_step_on_cpu_reaches_sync_bn_and_destroys_the_group(tmp_path):
    """gloo on the CPU: the group and the conversion run, then DDP refuses SyncBatchNorm on CPU modules (as
    SyncBatchNorm itself refuses CPU tensors under a group); the group is gone afterwards."""
    with pytest.raises(ValueError, match='SyncBatchNorm layers only work with GPU modules'):
        sync_bn_step('cpu', 'gloo', str(tmp_path / 'pg'))
    assert not torch.distributed.is_initialized()
