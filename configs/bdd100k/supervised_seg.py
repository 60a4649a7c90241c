# Single-task segmentation baseline: the detection head is removed, only seg-labeled images are used.
_base_ = './supervised_partial.py'
model = dict(tasks=dict(det=None))
train_dataloader = dict(dataset=dict(tasks=('seg', )))
val_dataloader = dict(dataset=dict(tasks=('seg', )))
test_dataloader = val_dataloader
val_evaluator = dict(tasks=['seg'])
test_evaluator = val_evaluator
