# Single-task detection with FixMatch*, Cityscapes low-data regime (4.1, Table 1), explicit sampling:
# the seg head is removed; images not labeled for det are the unlabeled data.
_base_ = './fixmatch_explicit.py'
model = dict(
    detector=dict(tasks=dict(seg=None)),
    semi_train_cfg=dict(unsup_weight=dict(_delete_=True, det=1.0)))
train_dataloader = dict(dataset=dict(tasks=('det', )))
val_dataloader = dict(dataset=dict(tasks=('det', )))
test_dataloader = val_dataloader
val_evaluator = dict(tasks=['det'])
test_evaluator = val_evaluator
