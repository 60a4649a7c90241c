# The real supervised multi-task config, shrunk to run on 2 CPU cores (tests, make demo): ResNet-18
# without ImageNet weights, narrow heads, 64x128 images, 2 samples per batch, no workers. Point data_root
# at a generated data set (tests/toy_data.py) with --cfg-options.
_base_ = '../cityscapes/supervised_partial.py'

model = dict(
    backbone=dict(depth=18, init_cfg=None),
    tasks=dict(
        det=dict(
            neck=dict(in_channels=[64, 128, 256, 512], out_channels=32),
            head=dict(in_channels=32, feat_channels=32, stacked_convs=1)),
        seg=dict(head=dict(in_channels=512, channels=32, c1_in_channels=64, c1_channels=8))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(64, 64), allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMultiTaskInputs'),
]
train_dataloader = dict(  # CPU: no worker processes, nothing to pin
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader

max_iters = 4
train_cfg = dict(max_iters=max_iters, val_interval=4)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
# from random initialisation, a larger step than Table 10's 1e-3 (tiny runs), kept stable by clipping
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=2, max_keep_ckpts=-1), visualization=dict(draw=False))
log_processor = dict(window_size=1)
env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
