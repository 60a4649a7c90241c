# FixMatch*, Cityscapes low-data regime (4.1; split file via --cfg-options), implicit sampling, unsupervised loss on the samples unlabeled for each task.
_base_ = [
    '../_base_/methods/fixmatch.py',
    '../_base_/datasets/cityscapes_lowdata.py',
    '../_base_/schedules/poly_sgd_89k.py',
    '../_base_/default_runtime.py',
]
# 16 images per step: 8 GPUs x 2 drawn uniformly (Table 10: 16)
train_dataloader = dict(batch_size=2, dataset=dict(filter_cfg=None))
model = dict(semi_train_cfg=dict(unsup_on='unlabeled', rampup_ratio=0.05))
