# make demo: the supervised multi-task baseline of the low-data experiments
# (configs/cityscapes_lowdata/supervised_partial.py), changed only in size (configs/_base_/demo_size.py).
# tools/demo.py points data_root and split_file at the data it generates and sets the schedule of the shared
# initialisation.
_base_ = ['../cityscapes_lowdata/supervised_partial.py', '../_base_/demo_size.py']

model = _base_.demo_model
max_iters = _base_.demo_max_iters
train_pipeline = _base_.demo_train_pipeline
train_dataloader = dict(_base_.demo_loader, batch_size=2, pin_memory=False, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(_base_.demo_loader, batch_size=4)
test_dataloader = val_dataloader
train_cfg = _base_.demo_train_cfg
param_scheduler = _base_.demo_param_scheduler
optim_wrapper = _base_.demo_optim_wrapper
default_hooks = _base_.demo_default_hooks
log_processor = _base_.demo_log_processor
env_cfg = _base_.demo_env_cfg
