# FixMatch* (photometric strong augmentation only) on the tiny CPU model: the semi-supervised wrapper around
# configs/demo/supervised_tiny.py, trained on every sample (labeled or not), 2 + 2 images per batch.
_base_ = './supervised_tiny.py'

detector = _base_.model
model = dict(
    _delete_=True,
    type='MultiTaskSemiSupervised',
    detector=detector,
    data_preprocessor=detector.data_preprocessor,
    strong_aug=dict(type='StrongAugment', geometric=False),
    semi_train_cfg=dict(unsup_on='unlabeled', rampup_ratio=0.05),
    semi_test_cfg=dict(predict_on='teacher'))
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='CheckInvalidLossHook', interval=50),
    dict(type='EMATeacherHook', decay=0.99),
]
# no weak flip for FixMatch* (Table 10); densefixmatch_tiny.py puts train_pipeline, which keeps it, back
train_dataloader = dict(
    batch_size=4,
    dataset=dict(filter_cfg=None, pipeline=[step for step in _base_.train_pipeline if step['type'] != 'RandomFlip']))
# the semi-supervised method's global batch of Table 10 (configs/_base_/methods/fixmatch.py), not the supervised
# base's 8 inherited from supervised_tiny.py
auto_scale_lr = dict(base_batch_size=16)
