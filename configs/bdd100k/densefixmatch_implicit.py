# Dense FixMatch, BDD100K (section 4.3), implicit sampling, unsupervised loss on the samples unlabeled for each task.
_base_ = './fixmatch_implicit.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))  # + the weak view's flip (Table 10)
