# Single-task detection with Dense FixMatch, Cityscapes low-data regime (4.1, Table 1), explicit sampling:
# the seg head is removed; images not labeled for det are the unlabeled data.
_base_ = './fixmatch_explicit_det.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops, pseudo-labels warped
