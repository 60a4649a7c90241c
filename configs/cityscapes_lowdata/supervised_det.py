# Single-task detection baseline: the det task selected by name (no other head), only det-labeled images used.
_base_ = './supervised_partial.py'
model = dict(tasks=dict(_delete_=True, det=_base_.model.tasks.det))
train_dataloader = dict(dataset=dict(tasks=('det', )))
val_dataloader = dict(dataset=dict(tasks=('det', )))  # the evaluator evaluates the dataset's tasks
test_dataloader = val_dataloader
