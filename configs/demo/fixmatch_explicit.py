# make demo: FixMatch* with explicit sampling (configs/cityscapes_lowdata/fixmatch_explicit.py), changed only in
# size, exactly as configs/demo/supervised.py changes the supervised baseline: the same ResNet-18 multi-task model
# (here the student and the EMA teacher, model.detector), crops, optimiser and schedule. Batches hold the
# supervised run's 2 labeled samples plus 2 others (the real config's 1 + 1 per GPU, twice).
_base_ = '../cityscapes_lowdata/fixmatch_explicit.py'

model = dict(
    detector=dict(
        backbone=dict(depth=18, init_cfg=None),
        tasks=dict(
            det=dict(
                neck=dict(in_channels=[64, 128, 256, 512], out_channels=64),
                head=dict(in_channels=64, feat_channels=64, stacked_convs=2,
                          anchor_generator=dict(octave_base_scale=1))),
            seg=dict(head=dict(in_channels=512, channels=64, c1_in_channels=64, c1_channels=16)))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(128, 128), allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(  # CPU: no worker processes, nothing to pin
    batch_size=4, num_workers=0, persistent_workers=False, pin_memory=False, sampler=dict(batch_size=4),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(
    logger=dict(interval=20),
    # one validation, at the end: the final checkpoint is the one reported (no selection on the val set)
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_best=None, save_optimizer=False),
    visualization=dict(draw=False))
log_processor = dict(window_size=20)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
