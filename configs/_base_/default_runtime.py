default_scope = 'mmdet'
custom_imports = dict(imports=['mtssl_mm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # the paper selects the checkpoint with the highest geometric mean of mAP and mIoU
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=5000,
        max_keep_ckpts=3,
        save_best='multitask/gmean',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
# custom_hooks are set by the method files (configs/_base_/methods/)

env_cfg = dict(
    cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict(backend='nccl'))
# BN layers become SyncBN under DDP (BN statistics over the whole batch of 8, Table 10)
sync_bn = 'torch'

# scalars (losses, lr, validation metrics) go to work_dir/<timestamp>/vis_data/: scalars.json (LocalVisBackend) and
# a TensorBoard event file (`tensorboard --logdir work_dirs/`); drop the second entry to turn TensorBoard off
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='MultiTaskLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False

# tools/test.py --tta: flip test-time augmentation of both tasks (mtssl_mm/models/multitask_tta.py); boxes of the
# views merged by class-wise NMS as mmdet's DetTTAModel, seg softmax scores averaged as mmseg's SegTTAModel. The
# views' pipeline (tta_pipeline) is built from the test pipeline unless a config sets one.
tta_model = dict(type='MultiTaskTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
