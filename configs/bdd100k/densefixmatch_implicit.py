# Dense FixMatch, BDD100K (section 4.3), implicit sampling, unsupervised loss on the samples unlabeled for each task.
_base_ = './fixmatch_implicit.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops, pseudo-labels warped
