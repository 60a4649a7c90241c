# Supervised multi-task baseline, BDD100K (section 4.3), on the samples labeled for both tasks only.
_base_ = './supervised_partial.py'
train_dataloader = dict(dataset=dict(filter_cfg=dict(labeled='all')))
