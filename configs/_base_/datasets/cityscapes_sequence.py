# Full Cityscapes + train_extra + sequence (section 4.2): cityscapes_train_extra.py plus the 86,275 frames of
# leftImg8bit_sequence/train that are not train images themselves (annotations/sequence.json, labeled for
# nothing). Sampling as in cityscapes_train_extra.py.
_base_ = './cityscapes_train_extra.py'

train_dataloader = dict(
    dataset=dict(datasets=_base_.train_dataloader.dataset.datasets +
                 [dict(_base_.train_part, ann_file='annotations/sequence.json')]))
