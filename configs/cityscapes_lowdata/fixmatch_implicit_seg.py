# Single-task segmentation with FixMatch*, Cityscapes low-data regime (4.1, Table 1), implicit sampling:
# the seg task alone (selected by name); images not labeled for seg are the unlabeled data.
_base_ = './fixmatch_implicit.py'
model = dict(
    detector=dict(tasks=dict(_delete_=True, seg=_base_.model.detector.tasks.seg)),  # this task alone, by name
    semi_train_cfg=dict(unsup_weight=dict(_delete_=True, seg=1.0)))
train_dataloader = dict(dataset=dict(tasks=('seg', )))
val_dataloader = dict(dataset=dict(tasks=('seg', )))  # the evaluator evaluates the dataset's tasks
test_dataloader = val_dataloader
