# Supervised multi-task baseline, full Cityscapes (section 4.2), on the samples labeled for both tasks only.
_base_ = './supervised_partial.py'
train_dataloader = dict(dataset=dict(filter_cfg=dict(labeled='all')))
