# Single-task detection baseline: the segmentation head is removed, only det-labeled images are used.
_base_ = './supervised_partial.py'
model = dict(tasks=dict(seg=None))
train_dataloader = dict(dataset=dict(tasks=('det', )))
val_dataloader = dict(dataset=dict(tasks=('det', )))
test_dataloader = val_dataloader
val_evaluator = dict(tasks=['det'])
test_evaluator = val_evaluator
