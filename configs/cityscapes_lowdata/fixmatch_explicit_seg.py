# Single-task segmentation with FixMatch*, Cityscapes low-data regime (4.1, Table 1), explicit sampling:
# the det head is removed; images not labeled for seg are the unlabeled data.
_base_ = './fixmatch_implicit_seg.py'
# 8 GPUs x (1 labeled + 1 other): Table 10's 8 + 8; "labeled" = labeled for this experiment's one task
train_dataloader = dict(sampler=dict(_delete_=True, type='ExplicitSampler', batch_size=2, labeled='any'))
