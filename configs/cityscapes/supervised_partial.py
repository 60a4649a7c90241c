# Supervised multi-task baseline on all partially labeled samples: a sample labeled for one task only gets
# a zero loss for the other (the "zeroed loss" baseline of section 4).
_base_ = [
    '../_base_/models/multitask_r50_retina_deeplabv3plus.py',
    '../_base_/datasets/cityscapes_multitask.py',
    '../_base_/schedules/poly_sgd_89k.py',
    '../_base_/default_runtime.py',
]
