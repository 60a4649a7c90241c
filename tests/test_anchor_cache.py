"""CachedAnchorGenerator: mmdet's anchors, computed once per feature-map size."""
import copy

import pytest
import torch
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import TASK_UTILS
from mmengine.config import Config
from test_semi import H, W, sample, tiny_semi

import mtssl_mm  # noqa: F401
from fixtures import REPO

MODEL = f'{REPO}/configs/_base_/models/multitask_r50_retina_deeplabv3plus.py'


def generators(**extra):
    cfg = copy.deepcopy(Config.fromfile(MODEL).model.tasks.det.head.anchor_generator)
    assert cfg.type == 'CachedAnchorGenerator'  # what every real config uses
    cfg.update(extra)
    plain = dict(cfg, type='AnchorGenerator')
    plain.pop('cache_size', None)
    return TASK_UTILS.build(cfg), TASK_UTILS.build(plain)


@pytest.fixture
def calls(monkeypatch):
    """One entry per level's anchors actually generated (by either generator)."""
    made = []
    original = AnchorGenerator.single_level_grid_priors
    monkeypatch.setattr(AnchorGenerator, 'single_level_grid_priors',
                        lambda self, *a, **k: made.append(1) or original(self, *a, **k))
    return made


def test_same_anchors_and_flags_as_mmdet_computed_once(calls):
    cached, plain = generators()
    for size in ((64, 96), (40, 40), (64, 96)):
        sizes = [(-(-size[0] // s), -(-size[1] // s)) for s in (8, 16, 16, 32, 64)]
        for dtype in (torch.float32, torch.bfloat16):
            got, ref = cached.grid_priors(sizes, dtype=dtype, device='cpu'), plain.grid_priors(sizes, dtype, 'cpu')
            assert len(got) == 5 and all(g.dtype == dtype and torch.equal(g, r) for g, r in zip(got, ref))
        for pad in ((size[0], size[1]), (size[0] - 20, size[1] - 30, 3)):
            got, ref = cached.valid_flags(sizes, pad, 'cpu'), plain.valid_flags(sizes, pad, 'cpu')
            assert all(torch.equal(g, r) for g, r in zip(got, ref))
    # the plain generator computed every call (6 x 5 levels), the cached one each (size, dtype) once (4 x 5)
    assert len(calls) == 6 * 5 + 4 * 5
    got = cached.grid_priors([(8, 12)] * 5, device='cpu')
    got.append('caller-side edit')  # a caller editing the returned list does not touch the table
    assert len(cached.grid_priors([(8, 12)] * 5, device='cpu')) == 5


def test_least_recently_used_entry_is_dropped():
    cached, _ = generators(cache_size=2)
    for side in (8, 9, 8, 10):
        cached.grid_priors([(side, side)] * 5, device='cpu')
    assert [k[0][0][0] for k in cached._priors] == [8, 10]


def test_semi_supervised_step_reuses_anchors_and_keeps_its_losses(calls):

    def losses_of(model):
        torch.manual_seed(1)
        out = model.loss(
            torch.randn(4, 3, H, W), [sample(
                ('det', 'seg')), sample(
                    ('det', )), sample(()), sample(('seg', ), 1)])
        return {k: torch.stack(v) if isinstance(v, list) else v for k, v in out.items()}

    cached, plain = tiny_semi(), tiny_semi()
    for model in (plain.student, plain.teacher):
        gen = model.tasks['det'].head.prior_generator
        gen.__class__ = AnchorGenerator  # same object, mmdet's methods
    ref = losses_of(plain)
    assert len(calls) == 3 * 5  # teacher prediction, supervised loss, unsupervised loss
    calls.clear()
    got = losses_of(cached)
    assert len(calls) == 2 * 5  # teacher once, student once
    calls.clear()
    losses_of(cached)
    assert calls == []  # the next step at the same size computes nothing
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
