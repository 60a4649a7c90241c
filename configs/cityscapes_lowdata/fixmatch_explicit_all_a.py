# FixMatch*, Cityscapes low-data scenario (a) (4.1, Table 1 (a)), explicit sampling with the seg-labeled images as
# the labeled pool, unsupervised loss on all samples.
_base_ = './fixmatch_explicit_a.py'
model = dict(semi_train_cfg=dict(unsup_on='all'))
