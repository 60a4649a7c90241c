# Supervised multi-task baseline, Cityscapes low-data regime (4.1; split file via --cfg-options), on the samples
# labeled for both tasks only.
_base_ = './supervised_partial.py'
train_dataloader = dict(dataset=dict(filter_cfg=dict(labeled='all')))
