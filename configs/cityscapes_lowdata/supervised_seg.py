# Single-task segmentation baseline: the seg task selected by name (no other head), only seg-labeled images used.
_base_ = './supervised_partial.py'
model = dict(tasks=dict(_delete_=True, seg=_base_.model.tasks.seg))
train_dataloader = dict(dataset=dict(tasks=('seg', )))
val_dataloader = dict(dataset=dict(tasks=('seg', )))  # the evaluator evaluates the dataset's tasks
test_dataloader = val_dataloader
