# FixMatch*, BDD100K (section 4.3), explicit sampling, unsupervised loss on the samples unlabeled for each task.
_base_ = './fixmatch_implicit.py'
# 8 GPUs x (1 labeled + 1 other): Table 10's 8 + 8. Section 4.3: "the explicit setting oversamples the
# fully-labeled samples" -- the labeled pool is the 2,972 images labeled for both tasks, the other pool the
# remaining 70,598 (143 of them labeled for no task)
train_dataloader = dict(sampler=dict(_delete_=True, type='ExplicitSampler', batch_size=2, labeled='all'))
