# Single-task segmentation with Dense FixMatch, Cityscapes low-data regime (4.1, Table 1), explicit sampling:
# the det head is removed; images not labeled for seg are the unlabeled data.
_base_ = './fixmatch_explicit_seg.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))  # + the weak view's flip (Table 10)
