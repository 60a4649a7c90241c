# Dense FixMatch, Cityscapes low-data regime (4.1; split file via --cfg-options), explicit sampling, unsupervised loss on the samples unlabeled for each task.
_base_ = './fixmatch_explicit.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops, pseudo-labels warped
