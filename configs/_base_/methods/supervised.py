# Supervised multi-task learning: MultiTaskModel trained on the labels each sample has (Eq. 3).
_base_ = '../models/multitask_r50_retina_deeplabv3plus.py'
custom_hooks = [
    # torch's RNG state goes into checkpoints, so that --resume repeats an uninterrupted run exactly
    dict(type='RNGStateHook'),
    # stop with an error when the loss becomes NaN/inf instead of training on
    dict(type='CheckInvalidLossHook', interval=50),
    # Section 4, Evaluation, for every experiment: "we use as model weights the exponential moving average of the
    # weights obtained during training" (Table 10: EMA decay 0.99). mmengine's EMAHook: ema = 0.99 ema + 0.01 w
    # after every iteration, BN running statistics averaged too (update_buffers); validation, the best-checkpoint
    # choice and tools/test.py see the averaged weights, and every checkpoint's state_dict holds them (the raw
    # weights are its ema_state_dict, for --resume). Semi-supervised configs get the same from their EMA teacher.
    dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.01, update_buffers=True),
]
# Table 10: lr 1e-3 is for a global batch of 8 (8 GPUs x 1 image); --auto-scale-lr keeps the lr per image
auto_scale_lr = dict(enable=False, base_batch_size=8)
