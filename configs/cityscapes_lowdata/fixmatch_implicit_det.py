# Single-task detection with FixMatch*, Cityscapes low-data regime (4.1, Table 1), implicit sampling:
# the det task alone (selected by name); images not labeled for det are the unlabeled data.
_base_ = './fixmatch_implicit.py'
model = dict(
    detector=dict(tasks=dict(_delete_=True, det=_base_.model.detector.tasks.det)),  # this task alone, by name
    semi_train_cfg=dict(unsup_weight=dict(_delete_=True, det=1.0)))
train_dataloader = dict(dataset=dict(tasks=('det', )))
val_dataloader = dict(dataset=dict(tasks=('det', )))  # the evaluator evaluates the dataset's tasks
test_dataloader = val_dataloader
