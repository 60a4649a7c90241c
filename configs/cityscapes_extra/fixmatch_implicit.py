# FixMatch*, Cityscapes train + train_extra (4.2), implicit sampling, unsupervised loss on the samples unlabeled for
# each task.
_base_ = [
    '../_base_/methods/fixmatch.py',
    '../_base_/datasets/cityscapes_train_extra.py',
    '../_base_/schedules/poly_sgd_150k.py',
    '../_base_/default_runtime.py',
]
# 16 images per step: 8 GPUs x 2 drawn uniformly (Table 10: 16)
# the dataset config already keeps the unlabeled images
# Table 10 marks the weak view's horizontal flip *, "disabled for invariant only FixMatch": FixMatch* trains
# without it (Dense FixMatch configs put train_pipeline, which keeps it, back)
photometric_pipeline = [step for step in _base_.train_pipeline if step['type'] != 'RandomFlip']
train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        datasets=[dict(part, pipeline=photometric_pipeline) for part in _base_.train_dataloader.dataset.datasets]))
model = dict(semi_train_cfg=dict(unsup_on='unlabeled', rampup_ratio=0.1))
