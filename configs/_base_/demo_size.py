# The size block of the make-demo configs, written once: configs/demo/supervised.py and fixmatch_explicit.py (and
# through it densefixmatch_explicit.py) list this file as a second _base_ and take these values. Not a config to
# run: only `demo_*` variables, so that it merges with any real config without a duplicate key.
#
# Changed only in size, to train 3 methods x 3 seeds on 2 CPU cores in minutes: a quarter-width ResNet-18
# (base_channels 16) without ImageNet weights (no download), narrow heads, anchors scaled to the 128x256 generated
# images, 128x128 crops, a short schedule, validation every 150 iterations with the best checkpoint by
# multitask/gmean (as the paper). tests/test_demo.py checks that nothing but sizes differs from the real configs.
demo_model = dict(  # MultiTaskModel (model, or model.detector of the semi-supervised wrapper)
    backbone=dict(depth=18, base_channels=16, init_cfg=None),
    tasks=dict(
        det=dict(
            neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
            # 128x256 images are 1/8 of Cityscapes: anchors from 8 px (RetinaNet's start at 32 px)
            head=dict(in_channels=32, feat_channels=32, stacked_convs=1, anchor_generator=dict(octave_base_scale=1))),
        seg=dict(head=dict(in_channels=128, channels=32, c1_in_channels=16, c1_channels=8))))
# Table 10's resize 0.5-2 and random crop, at the demo's image size
demo_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(128, 128), allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMultiTaskInputs'),
]
demo_loader = dict(num_workers=0, persistent_workers=False)  # CPU: no worker processes
demo_max_iters = 600
demo_train_cfg = dict(max_iters=demo_max_iters, val_interval=150)
demo_param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=demo_max_iters, by_epoch=False)]
# from random initialisation: a larger step than Table 10's 1e-3, kept stable by clipping (as supervised_tiny.py)
demo_optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10, norm_type=2))
demo_default_hooks = dict(
    logger=dict(interval=25, log_metric_by_epoch=False),  # validation scalars at their iteration
    # the checkpoint with the best val multitask/gmean is kept (the paper's selection); tools/demo.py tests it
    checkpoint=dict(
        interval=150,
        max_keep_ckpts=1,
        save_best='multitask/gmean',
        rule='greater',
        save_optimizer=False,
        save_last=True),
    visualization=dict(draw=False))
demo_log_processor = dict(window_size=25)
demo_env_cfg = dict(mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1))
