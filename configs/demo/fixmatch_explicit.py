# make demo: FixMatch* with explicit sampling (configs/cityscapes_lowdata/fixmatch_explicit.py), changed only in
# size, by the same block as configs/demo/supervised.py (configs/_base_/demo_size.py): the same quarter-width ResNet-18
# multi-task model (here the student and the EMA teacher, model.detector), crops, optimiser, schedule, validation
# and best-checkpoint rule. Batches hold the supervised run's 2 labeled samples plus 2 others (the real config's
# 1 + 1 per GPU, twice). The method is the real config's: sigma_det 0.5, sigma_seg 0, EMA 0.99, ramp-up over the
# first 5 % of the run, unsupervised loss on the samples unlabeled for each task, the student sees cat(all weak,
# all strong). The pseudo-label quality (det.pl/*, seg.pl/*; the real config's hooks) is measured every 25
# iterations and drawn at the end (vis_data/vis_image/pseudo_labels_*.png).
_base_ = ['../cityscapes_lowdata/fixmatch_explicit.py', '../_base_/demo_size.py']

model = dict(detector=_base_.demo_model)
train_pipeline = _base_.demo_train_pipeline  # with the weak flip, which densefixmatch_explicit.py puts back
# as the real config: no weak flip for FixMatch* (Table 10)
train_dataloader = dict(
    _base_.demo_loader,
    batch_size=4,
    pin_memory=False,
    sampler=dict(batch_size=4),
    dataset=dict(pipeline=[step for step in train_pipeline if step['type'] != 'RandomFlip']))
val_dataloader = dict(_base_.demo_loader, batch_size=4)
test_dataloader = val_dataloader
max_iters = _base_.demo_max_iters
train_cfg = _base_.demo_train_cfg
param_scheduler = _base_.demo_param_scheduler
optim_wrapper = _base_.demo_optim_wrapper
default_hooks = _base_.demo_default_hooks
log_processor = _base_.demo_log_processor
env_cfg = _base_.demo_env_cfg
# the real config's hooks (EMA teacher, pseudo-label quality and pictures; tests/test_demo.py checks they are the
# same), at the demo's intervals: quality every 25 iterations, pictures at the end
custom_hooks = [
    dict(type='RNGStateHook'),
    dict(type='CheckInvalidLossHook', interval=50),
    dict(type='EMATeacherHook', decay=0.99),
    dict(type='PseudoLabelQualityHook', interval=25),
    dict(type='PseudoLabelVisHook', interval=max_iters, num_samples=2),
]
