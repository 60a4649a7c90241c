# Dense FixMatch on the tiny CPU model: FixMatch* plus the affine ops, whose geometry moves the pseudo-labels.
_base_ = './fixmatch_tiny.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))  # + the weak view's flip (Table 10)
