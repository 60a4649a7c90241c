# FixMatch*, Cityscapes train + train_extra (4.2), implicit sampling, unsupervised loss on all samples.
_base_ = './fixmatch_implicit.py'
model = dict(semi_train_cfg=dict(unsup_on='all'))
