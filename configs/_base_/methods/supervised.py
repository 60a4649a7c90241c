# Supervised multi-task learning: MultiTaskDetSeg trained on the labels each sample has (Eq. 3).
_base_ = '../models/multitask_r50_retina_deeplabv3plus.py'
custom_hooks = [
    # torch's RNG state goes into checkpoints, so that --resume repeats an uninterrupted run exactly
    dict(type='RNGStateHook'),
    # stop with an error when the loss becomes NaN/inf instead of training on
    dict(type='CheckInvalidLossHook', interval=50),
]
# Table 10: lr 1e-3 is for a global batch of 8 (8 GPUs x 1 image); --auto-scale-lr keeps the lr per image
auto_scale_lr = dict(enable=False, base_batch_size=8)
