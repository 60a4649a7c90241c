# Supervised multi-task baseline, BDD100K (section 4.3), on all partially labeled samples: a sample labeled for one
# task only gets a zero loss for the other (the "zeroed loss" baseline of section 4).
_base_ = [
    '../_base_/methods/supervised.py',
    '../_base_/datasets/bdd100k_multitask.py',
    '../_base_/schedules/poly_sgd_300k.py',
    '../_base_/default_runtime.py',
]
train_dataloader = dict(dataset=dict(filter_cfg=dict(labeled='any')))
model = dict(tasks=dict(det=dict(head=dict(num_classes=10))))  # Table 9's 10 classes
