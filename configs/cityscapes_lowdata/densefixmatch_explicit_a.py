# Dense FixMatch, Cityscapes low-data scenario (a) (4.1, Table 1 (a)), explicit sampling with the seg-labeled images
# as the labeled pool, unsupervised loss on the samples unlabeled for each task.
_base_ = './fixmatch_explicit_a.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))  # + the weak view's flip (Table 10)
