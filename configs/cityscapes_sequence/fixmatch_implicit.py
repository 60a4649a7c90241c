# FixMatch*, Cityscapes train + train_extra + sequence (4.2), implicit sampling, unsupervised loss on the samples unlabeled for each task.
_base_ = [
    '../_base_/methods/fixmatch.py',
    '../_base_/datasets/cityscapes_sequence.py',
    '../_base_/schedules/poly_sgd_150k.py',
    '../_base_/default_runtime.py',
]
# 16 images per step: 8 GPUs x 2 drawn uniformly (Table 10: 16)
train_dataloader = dict(batch_size=2)  # the dataset config already keeps the unlabeled images
model = dict(semi_train_cfg=dict(unsup_on='unlabeled', rampup_ratio=0.1))
