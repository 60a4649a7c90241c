# Table 10: SGD, Nesterov momentum 0.9, lr 1e-3, weight decay 5e-4, polynomial decay (power 0.9).
# ~89,250 steps for the low-data Cityscapes experiments (section 4.1). Leaf configs with another budget
# set both ``train_cfg.max_iters`` and ``param_scheduler[0].end``.
max_iters = 89250
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# auto_scale_lr (the global batch this lr is for) is set by the method: configs/_base_/methods/*.py
