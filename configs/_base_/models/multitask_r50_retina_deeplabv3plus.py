# Shared ResNet-50; detection = FPN + RetinaNet (focal + GIoU loss); segmentation = DeepLabV3+.
#
# Output stride 16 (default): the last ResNet stage is dilated (strides 1,2,2,1; dilations 1,1,1,2), the
# setting DeepLabV3+ trains with. RetinaNet's FPN then sees C5 at stride 16, so its anchor generator is told
# the true level strides (8, 16, 16, 32, 64) while keeping RetinaNet's anchor sizes (32..512 px) through
# ``base_sizes``. For output stride 32 (plain RetinaNet backbone, ~25 % less backbone compute, coarser
# segmentation) set ``backbone.strides=(1, 2, 2, 2)``, ``backbone.dilations=(1, 1, 1, 1)``, anchor
# ``strides=[8, 16, 32, 64, 128]`` and ASPP ``dilations=(1, 3, 6, 9)``.
#
# BN: trainable, statistics updated (norm_eval=False), converted to SyncBN under DDP by
# ``sync_bn='torch'`` in default_runtime.py -- segmentation heads need batch statistics, and the total
# batch of 8 (Table 10) is too small per GPU for plain BN. All stages are trained (frozen_stages=-1), as in
# mmseg's DeepLabV3+. ImageNet initialisation (Table 10); tests set ``backbone.init_cfg=None``.
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='MultiTaskModel',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],  # ImageNet mean/std (Table 10), in 0..255 RGB
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_seg=True,
        seg_pad_value=255,
        non_blocking=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        strides=(1, 2, 2, 1),
        dilations=(1, 1, 1, 2),
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    tasks=dict(
        det=dict(
            type='DetectionTask',
            loss_weight=1.0,
            neck=dict(
                type='FPN',
                in_channels=[256, 512, 1024, 2048],
                out_channels=256,
                start_level=1,
                add_extra_convs='on_input',
                num_outs=5),
            head=dict(
                type='RetinaHead',
                num_classes=8,
                in_channels=256,
                stacked_convs=4,
                feat_channels=256,
                anchor_generator=dict(
                    type='CachedAnchorGenerator',  # mmdet's, remembering anchors per feature-map size
                    octave_base_scale=4,
                    scales_per_octave=3,
                    ratios=[0.5, 1.0, 2.0],
                    strides=[8, 16, 16, 32, 64],
                    base_sizes=[8, 16, 32, 64, 128]),
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0]),
                reg_decoded_bbox=True,
                loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
                # classification : regression = 1 : 1, as mmdet's RetinaNet and torchvision's (the paper gives no
                # weight; 2.0 is the ATSS/GFL convention)
                loss_bbox=dict(type='GIoULoss', loss_weight=1.0)),
            # Eq. 3/4: each image's loss over its positive anchors (at least 1), then the mean over the images of
            # B^l_det / B^u_det in the global batch; 'pooled': mmdet's mean over the batch's positive anchors
            loss_normaliser='per_image',
            train_cfg=dict(
                # ignore_iof_thr=-1, mmdet's RetinaNet: crowd / ignore regions (ignored_instances) play no part in
                # the assignment and serve only COCO evaluation (iscrowd). With ignore_iof_thr > 0 and
                # min_pos_iou=0, a box whose overlapping anchors all fall in an ignore region keeps a best IoU of 0
                # and takes every anchor with IoU 0 as a positive (gt_max_assign_all): hundreds of garbage targets
                assigner=dict(
                    type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
                sampler=dict(type='PseudoSampler'),
                allowed_border=-1,
                pos_weight=-1,
                debug=False),
            test_cfg=dict(
                nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                max_per_img=100)),
        seg=dict(
            type='SegmentationTask',
            loss_weight=1.0,
            head=dict(
                type='mmseg.DepthwiseSeparableASPPHead',
                in_channels=2048,
                in_index=3,
                channels=512,
                dilations=(1, 6, 12, 18),
                c1_in_channels=256,
                c1_channels=48,
                dropout_ratio=0.1,
                num_classes=19,
                norm_cfg=norm_cfg,
                align_corners=False,
                ignore_index=255,
                loss_decode=dict(
                    type='mmseg.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True)))))
