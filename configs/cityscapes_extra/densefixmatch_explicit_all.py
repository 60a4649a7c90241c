# Dense FixMatch, Cityscapes train + train_extra (4.2), explicit sampling, unsupervised loss on all samples.
_base_ = './fixmatch_explicit_all.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops, pseudo-labels warped
