# FixMatch*, Cityscapes low-data regime (4.1; split file via --cfg-options), implicit sampling, unsupervised loss on
# the samples unlabeled for each task.
_base_ = [
    '../_base_/methods/fixmatch.py',
    '../_base_/datasets/cityscapes_lowdata.py',
    '../_base_/schedules/poly_sgd_89k.py',
    '../_base_/default_runtime.py',
]
# 16 images per step: 8 GPUs x 2 drawn uniformly (Table 10: 16)
# Table 10 marks the weak view's horizontal flip *, "disabled for invariant only FixMatch": FixMatch* trains
# without it (Dense FixMatch configs put train_pipeline, which keeps it, back)
train_dataloader = dict(
    batch_size=2,
    dataset=dict(filter_cfg=None, pipeline=[step for step in _base_.train_pipeline if step['type'] != 'RandomFlip']))
model = dict(semi_train_cfg=dict(unsup_on='unlabeled', rampup_ratio=0.05))
# What the student is taught (every low-data semi-supervised config inherits this file): the pseudo-labels measured
# against the labels the split withheld (det.pl/*, seg.pl/* scalars every 50 iterations) and drawn, weak view beside
# strong view (vis_data/vis_image/pseudo_labels_*.png every 500 iterations)
custom_hooks = _base_.custom_hooks + [
    dict(type='PseudoLabelQualityHook', interval=50),
    dict(type='PseudoLabelVisHook', interval=500, num_samples=2),
]
