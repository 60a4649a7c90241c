# FixMatch*: invariance to photometric transforms (section 3). The multi-task model becomes the student of
# an EMA teacher (decay 0.99, Table 10); strong views use the photometric RandAugment ops + Cutout only.
# Dataset configs used with it keep every image (train_dataloader.dataset.filter_cfg=None).
_base_ = '../models/multitask_r50_retina_deeplabv3plus.py'
detector = _base_.model
model = dict(
    _delete_=True,
    type='MultiTaskSemiSupervised',
    detector=detector,
    data_preprocessor=detector.data_preprocessor,
    # Table 10: 2 ops per batch (drawn once per batch on each process, as the authors' code; op_draw='sample' draws
    # them per sample), magnitudes per sample, then Cutout 10-30 % of the area
    strong_aug=dict(type='StrongAugment', num_ops=2, op_draw='batch', geometric=False, cutout=(0.1, 0.3)),
    # unsup_on: B^u_t = samples unlabeled for t ('unlabeled') or all samples ('all'); lambda_t ramps up
    # along a sigmoid over the first 5 % of training (4.1; 10 % for 4.2 and 4.3) to unsup_weight (1)
    semi_train_cfg=dict(unsup_on='unlabeled', unsup_weight=dict(det=1.0, seg=1.0), rampup_ratio=0.05),
    # validation and the best checkpoint use the EMA teacher
    semi_test_cfg=dict(predict_on='teacher'))
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='CheckInvalidLossHook', interval=50),
    dict(type='EMATeacherHook', decay=0.99),
]
# Table 10: lr 1e-3 is for a global batch of 16 (8 GPUs x 2 images: 8 labeled + 8 others with explicit
# sampling, 16 drawn uniformly with implicit sampling); --auto-scale-lr keeps the lr per image
auto_scale_lr = dict(enable=False, base_batch_size=16)
