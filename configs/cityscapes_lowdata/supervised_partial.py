# Supervised multi-task baseline, Cityscapes low-data regime (4.1; split file via --cfg-options), on all partially
# labeled samples: a sample labeled for one
# task only gets a zero loss for the other (the "zeroed loss" baseline of section 4).
_base_ = [
    '../_base_/methods/supervised.py',
    '../_base_/datasets/cityscapes_lowdata.py',
    '../_base_/schedules/poly_sgd_89k.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(dataset=dict(filter_cfg=dict(labeled='any')))
