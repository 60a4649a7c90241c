# Full Cityscapes + train_extra (section 4.2): the 2,975 train images labeled for both tasks, plus the
# 19,998 train_extra images labeled for nothing (their coarse labels are not used), as written by
# tools/dataset_converters/cityscapes.py (annotations/train.json + annotations/train_extra.json).
# filter_cfg=None: unlabeled images must stay. Sampling: the inherited InfiniteSampler is implicit sampling
# (uniform); explicit sampling (half labeled per batch) is, for a per-GPU batch of 2 (8 GPUs: 8 + 8):
#     train_dataloader = dict(batch_size=2,
#                             sampler=dict(_delete_=True, type='ExplicitSampler', batch_size=2))
_base_ = './cityscapes_multitask.py'

# one MultiTaskDataset of the ConcatDataset below: the base's train set, keeping its unlabeled images
train_part = dict(_base_.train_dataloader.dataset, filter_cfg=None)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(train_part, ann_file='annotations/train.json'),
            dict(train_part, ann_file='annotations/train_extra.json'),
        ]))
