# Single-task detection with Dense FixMatch, Cityscapes low-data regime (4.1, Table 1), explicit sampling:
# the seg head is removed; images not labeled for det are the unlabeled data.
_base_ = './fixmatch_explicit_det.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))  # + the weak view's flip (Table 10)
