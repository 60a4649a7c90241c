# make demo: FixMatch* with explicit sampling (configs/cityscapes_lowdata/fixmatch_explicit.py), changed only in
# size, exactly as configs/demo/supervised.py changes the supervised baseline: the same quarter-width ResNet-18
# multi-task model (here the student and the EMA teacher, model.detector), crops, optimiser, schedule, validation
# and best-checkpoint rule. Batches hold the supervised run's 2 labeled samples plus 2 others (the real config's
# 1 + 1 per GPU, twice). The method is the real config's: sigma_det 0.5, sigma_seg 0, EMA 0.99, ramp-up over the
# first 5 % of the run, unsupervised loss on the samples unlabeled for each task, the student sees cat(all weak,
# all strong). The pseudo-label quality (det.pl/*, seg.pl/*; the real config's hooks) is measured every 25
# iterations and drawn at the end (vis_data/vis_image/pseudo_labels_*.png).
_base_ = '../cityscapes_lowdata/fixmatch_explicit.py'

model = dict(
    detector=dict(
        backbone=dict(depth=18, base_channels=16, init_cfg=None),
        tasks=dict(
            det=dict(
                neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
                head=dict(in_channels=32, feat_channels=32, stacked_convs=1,
                          anchor_generator=dict(octave_base_scale=1))),
            seg=dict(head=dict(in_channels=128, channels=32, c1_in_channels=16, c1_channels=8)))))

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

max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=150)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(
    logger=dict(interval=25, log_metric_by_epoch=False),  # validation scalars at their iteration
    checkpoint=dict(interval=150, max_keep_ckpts=1, save_best='multitask/gmean', rule='greater',
                    save_optimizer=False, save_last=True),
    visualization=dict(draw=False))
log_processor = dict(window_size=25)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
# the real config's hooks (EMA teacher, pseudo-label quality and pictures; tests/test_demo.py checks they are the
# same), at the demo's intervals: quality every 25 iterations, pictures at the end
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='CheckInvalidLossHook', interval=50),
    dict(type='EMATeacherHook', decay=0.99),
    dict(type='PseudoLabelQualityHook', interval=25),
    dict(type='PseudoLabelVisHook', interval=max_iters, num_samples=2),
]
