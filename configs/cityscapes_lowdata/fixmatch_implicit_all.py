# FixMatch*, Cityscapes low-data regime (4.1; split file via --cfg-options), implicit sampling, unsupervised loss on
# all samples.
_base_ = './fixmatch_implicit.py'
model = dict(semi_train_cfg=dict(unsup_on='all'))
