# Dense FixMatch, Cityscapes low-data regime (4.1; split file via --cfg-options), explicit sampling, unsupervised loss
# on the samples unlabeled for each task.
_base_ = './fixmatch_explicit.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))  # + the weak view's flip (Table 10)
