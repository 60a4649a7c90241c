# FixMatch* on the Cityscapes train set only (Table 4, column "train"): every image is labeled for both
# tasks, so the unsupervised loss runs on all samples as a regulariser and only implicit sampling applies.
_base_ = [
    '../_base_/methods/fixmatch.py',
    '../_base_/datasets/cityscapes_multitask.py',
    '../_base_/schedules/poly_sgd_150k.py',
    '../_base_/default_runtime.py',
]
# 16 images per step: 8 GPUs x 2 drawn uniformly (Table 10: 16)
# Table 10 marks the weak view's horizontal flip *, "disabled for invariant only FixMatch": FixMatch* trains
# without it (Dense FixMatch configs put train_pipeline, which keeps it, back)
train_dataloader = dict(
    batch_size=2,
    dataset=dict(filter_cfg=None, pipeline=[step for step in _base_.train_pipeline if step['type'] != 'RandomFlip']))
model = dict(semi_train_cfg=dict(unsup_on='all', rampup_ratio=0.1))
