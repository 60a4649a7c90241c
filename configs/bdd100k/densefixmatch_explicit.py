# Dense FixMatch, BDD100K (section 4.3), explicit sampling, unsupervised loss on the samples unlabeled for each task.
_base_ = './fixmatch_explicit.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops, pseudo-labels warped
