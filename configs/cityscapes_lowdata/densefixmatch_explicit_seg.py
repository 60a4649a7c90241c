# Single-task segmentation with Dense FixMatch, Cityscapes low-data regime (4.1, Table 1), explicit sampling:
# the det head is removed; images not labeled for seg are the unlabeled data.
_base_ = './fixmatch_explicit_seg.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops, pseudo-labels warped
