# Single-task segmentation with FixMatch*, Cityscapes low-data regime (4.1, Table 1), explicit sampling:
# the det head is removed; images not labeled for seg are the unlabeled data.
_base_ = './fixmatch_explicit.py'
model = dict(
    detector=dict(tasks=dict(det=None)),
    semi_train_cfg=dict(unsup_weight=dict(_delete_=True, seg=1.0)))
train_dataloader = dict(dataset=dict(tasks=('seg', )))
val_dataloader = dict(dataset=dict(tasks=('seg', )))
test_dataloader = val_dataloader
val_evaluator = dict(tasks=['seg'])
test_evaluator = val_evaluator
