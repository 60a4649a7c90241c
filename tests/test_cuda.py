"""The CUDA path against the CPU: strong augmentation, a Dense FixMatch step under AMP, predict, SyncBN + NCCL.

Every test here is marked ``cuda``: skipped, with the reason, where ``torch.cuda.is_available()`` is False (CI);
``pytest -m cuda`` selects them on a GPU machine (tools/gpu_check.sh runs them). Their bodies and tolerances are in
tests/cuda_checks.py; tests/test_cuda_checks.py runs the same bodies on the CPU against the CPU.
"""
import pytest
import torch

from mtssl_mm.augmentation import GEOMETRIC_OPS, PHOTOMETRIC_OPS
from cuda_checks import (BOX_MAX_UNMATCHED, IMG_ATOL, IMG_MAX_FRACTION, SEG_MAX_FRACTION, dense_fixmatch_amp_step,
                         fixed_model, image_difference, match_detections, predict_batch, predict_on,
                         strong_augment_pair, sync_bn_step, toy_batch)

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize('geometric', [True, False])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_strong_augment_on_cuda_equals_cpu_for_the_same_draws(geometric, seed):
    out = strong_augment_pair(dict(type='StrongAugment', geometric=geometric), ['cpu', 'cuda'], n=16, seed=seed)
    (cpu, m_cpu), (gpu, m_gpu) = out['cpu'], out['cuda']
    assert torch.equal(m_cpu, m_gpu)
    diff = image_difference(cpu, gpu)
    assert diff['fraction_over_atol'] <= IMG_MAX_FRACTION, diff


@pytest.mark.parametrize('op', PHOTOMETRIC_OPS + GEOMETRIC_OPS)
def test_each_strong_augment_op_on_cuda_equals_cpu(op):
    """One op per sample (hflip and Cutout on top): nothing upstream rounds, so every value is within IMG_ATOL."""
    out = strong_augment_pair(dict(type='StrongAugment', ops=(op, ), num_ops=1), ['cpu', 'cuda'], n=8, seed=3)
    (cpu, m_cpu), (gpu, m_gpu) = out['cpu'], out['cuda']
    assert torch.equal(m_cpu, m_gpu)
    diff = image_difference(cpu, gpu)
    assert diff['max_abs'] <= IMG_ATOL, diff


@pytest.fixture(scope='module')
def amp_batch(tmp_path_factory):
    return toy_batch(str(tmp_path_factory.mktemp('amp')))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_dense_fixmatch_step_under_cuda_amp_is_finite_and_backpropagates(dtype, amp_batch):
    res = dense_fixmatch_amp_step('cuda', dtype, amp_batch)
    assert res['pseudo_boxes_per_img'] > 0  # the teacher's boxes went through sigma_det and the warps
    assert all(torch.isfinite(torch.tensor(v)) for v in res['losses'].values()), res['losses']
    assert res['losses']['seg.unsup.loss_ce'] > 0 and res['losses']['det.sup.loss_cls'] > 0
    assert res['params'] > 0 and not res['no_grad'] and not res['non_finite_grad'], res


def test_predict_on_cuda_equals_cpu():
    model, batch = fixed_model(), predict_batch()
    for a, b in zip(predict_on(model, batch, 'cpu'), predict_on(model, batch, 'cuda')):
        m = match_detections(a, b)
        assert m['count_a'] > 0, 'the fixed model detects nothing: the comparison would be empty'
        assert m['unmatched_a'] <= BOX_MAX_UNMATCHED and m['unmatched_b'] <= BOX_MAX_UNMATCHED, m
        assert m['seg_fraction_differing'] <= SEG_MAX_FRACTION, m


def test_sync_bn_under_a_one_process_nccl_group(tmp_path):
    res = sync_bn_step('cuda', 'nccl', str(tmp_path / 'pg'))
    assert res['sync_bn_layers'] > 0 and res['grads_finite'] and res['running_mean_moved'], res
    assert torch.isfinite(torch.tensor(res['loss'])) and res['all_reduce'] == [1.0, 1.0, 1.0]
    assert not torch.distributed.is_initialized()
