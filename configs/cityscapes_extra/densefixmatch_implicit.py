# Dense FixMatch, Cityscapes train + train_extra (4.2), implicit sampling, unsupervised loss on the samples unlabeled for each task.
_base_ = './fixmatch_implicit.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops, pseudo-labels warped
