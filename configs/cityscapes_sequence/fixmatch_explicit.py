# FixMatch*, Cityscapes train + train_extra + sequence (4.2), explicit sampling, unsupervised loss on the samples
# unlabeled for each task.
_base_ = './fixmatch_implicit.py'
# 8 GPUs x (1 labeled + 1 other): Table 10's 8 + 8; "labeled" = labeled for at least one task (section 3)
train_dataloader = dict(sampler=dict(_delete_=True, type='ExplicitSampler', batch_size=2, labeled='any'))
