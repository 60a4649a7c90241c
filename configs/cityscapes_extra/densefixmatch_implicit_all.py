# Dense FixMatch, Cityscapes train + train_extra (4.2), implicit sampling, unsupervised loss on all samples.
_base_ = './fixmatch_implicit_all.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops, pseudo-labels warped
