# Cityscapes low-data regime (section 4.1): the 2,975 train images, of which a split file written by
# tools/make_partial_split.py keeps some labeled per task (scenarios a-e); the other images stay in the
# data set, labeled for nothing (semi-supervised training uses them).
#
# The split file is REQUIRED: the placeholder below does not exist, so training stops with
# "split file splits/REPLACE_ME.json does not exist" until a leaf config sets
#     train_dataloader = dict(dataset=dict(split_file='splits/c_93_seed0.json'))
# or the command line does: --cfg-options train_dataloader.dataset.split_file=splits/....
# (the path is relative to data_root, like ann_file).
#
# The inherited filter_cfg=dict(labeled='any') trains the supervised baselines on the images labeled for at
# least one task; semi-supervised configs set train_dataloader.dataset.filter_cfg=None to keep every image.
# Validation is the full val set, labeled for both tasks.
_base_ = './cityscapes_multitask.py'

# withheld_labels: the labels the split takes away still travel with their images, apart from the training fields
# (nothing trains on them); the semi-supervised configs measure the teacher's pseudo-labels against them
# (PseudoLabelQualityHook, configs/cityscapes_lowdata/fixmatch_implicit.py).
split_file = 'splits/REPLACE_ME.json'
train_dataloader = dict(dataset=dict(split_file=split_file, withheld_labels=True))
