# Supervised multi-task baseline, full Cityscapes (section 4.2), on all partially labeled samples: a sample labeled
# for one
# task only gets a zero loss for the other (the "zeroed loss" baseline of section 4).
_base_ = [
    '../_base_/methods/supervised.py',
    '../_base_/datasets/cityscapes_multitask.py',
    '../_base_/schedules/poly_sgd_150k.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(dataset=dict(filter_cfg=dict(labeled='any')))
