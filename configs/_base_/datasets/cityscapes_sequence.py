# Full Cityscapes + train_extra + sequence (section 4.2): cityscapes_train_extra.py plus the 86,275 frames of
# leftImg8bit_sequence/train that are not train images themselves (annotations/sequence.json, labeled for
# nothing). Sampling as in cityscapes_train_extra.py.
_base_ = './cityscapes_train_extra.py'

train_part = dict(  # one MultiTaskDataset of the ConcatDataset below
    type='MultiTaskDataset',
    data_root={{_base_.data_root}},
    data_prefix=dict(img='', seg=''),
    metainfo={{_base_.metainfo}},
    tasks=('det', 'seg'),
    split_file=None,
    filter_cfg=None,
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(train_part, ann_file='annotations/train.json'),
            dict(train_part, ann_file='annotations/train_extra.json'),
            dict(train_part, ann_file='annotations/sequence.json'),
        ]))
