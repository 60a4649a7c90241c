"""Section 4, *Evaluation*: "we use as model weights the exponential moving average of the weights obtained
during training" -- for the supervised baselines too (mmengine's ``EMAHook``, decay 0.99, BN buffers too).

A real Runner trains the tiny supervised config; a hook records the raw weights after every iteration and the
weights the model has while it validates. The EMA is recomputed from the raw weights here, independently of
mmengine's averaged model, and must be what validation ran on and what every checkpoint's ``state_dict`` holds.
"""
import glob

import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mtssl_mm  # noqa: F401
from mtssl_mm.utils.checkpoint import safe_torch_load
from fixtures import tiny_cfg


class Recorder(Hook):
    priority = 'VERY_HIGH'  # after_train_iter before EMAHook's update; before_val_iter after its swap (epoch-level)

    def __init__(self):
        self.raw, self.validated = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.raw.append({k: v.detach().clone() for k, v in runner.model.state_dict().items()})

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            self.validated.append({k: v.detach().clone() for k, v in runner.model.state_dict().items()})


def expected_ema(raw, decay=0.99):
    """mmengine's ExponentialMovingAverage: a copy at the first update, then ``decay * ema + (1 - decay) * w``;
    integer buffers (BN ``num_batches_tracked``) keep the first copy."""
    ema = {k: v.clone() for k, v in raw[0].items()}
    for weights in raw[1:]:
        for k, v in weights.items():
            if v.is_floating_point():
                ema[k] = decay * ema[k] + (1 - decay) * v
    return ema


def assert_weights_equal(got, want, what):
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k].float(), want[k].float(), rtol=1e-5, atol=1e-6, msg=f'{what}: {k}')


def test_supervised_validation_and_checkpoints_use_the_ema_weights(partial_root, tmp_path):
    cfg = tiny_cfg(partial_root, str(tmp_path))
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    assert len(recorder.raw) == 4 and len(recorder.validated) == 1  # validation after iteration 4
    ema = expected_ema(recorder.raw)
    assert_weights_equal(recorder.validated[0], ema, 'validated weights')
    bn_mean = [k for k in ema if k.endswith('running_mean')][0]
    moved = [k for k in ema if ema[k].is_floating_point() and not torch.allclose(ema[k], recorder.raw[-1][k])]
    assert bn_mean in moved and len(moved) > 0.9 * len([k for k in ema if ema[k].is_floating_point()]), \
        'the EMA differs from the raw weights (so the comparison above can fail)'
    # after validation the model trains on its raw weights again
    assert_weights_equal(runner.model.state_dict(), recorder.raw[-1], 'weights after validation')
    # every checkpoint holds the averaged weights as its state_dict (what tools/test.py, tools/infer.py and the
    # ONNX export load) and the raw ones as ema_state_dict (for --resume)
    for path in [str(tmp_path / 'iter_4.pth')] + glob.glob(str(tmp_path / 'best_multitask_gmean_iter_4.pth')):
        ckpt = safe_torch_load(path)
        assert_weights_equal(ckpt['state_dict'], ema, f'{path} state_dict')
        raw = {k[len('module.'):]: v for k, v in ckpt['ema_state_dict'].items() if k.startswith('module.')}
        assert_weights_equal(raw, recorder.raw[-1], f'{path} ema_state_dict')
    assert glob.glob(str(tmp_path / 'best_multitask_gmean_iter_4.pth'))
