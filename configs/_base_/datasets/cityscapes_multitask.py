# Cityscapes as converted by tools/dataset_converters/cityscapes.py (annotations/{train,val}.json).
# Table 10: resize scale 0.5-2, random crop 800x800, horizontal flip; evaluation at full resolution.
dataset_type = 'MultiTaskDataset'
data_root = 'data/cityscapes/'

det_classes = ('person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle')
det_palette = [(220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230),
               (119, 11, 32)]
seg_classes = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign', 'vegetation',
               'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle')
seg_palette = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
               (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
               (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)]
# The Cityscapes label id of each trainId above (cityscapesscripts' table, trainId -> id): tools/infer.py writes
# its segmentation PNGs in these ids, the format of Cityscapes' evaluation scripts and benchmark server. A
# dataset whose maps are trainIds in its own evaluation (BDD100K) sets seg_label_ids=None.
seg_label_ids = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
metainfo = dict(
    classes=det_classes,
    palette=det_palette,
    seg_classes=seg_classes,
    seg_palette=seg_palette,
    seg_label_ids=seg_label_ids)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='RandomResize', scale=(2048, 1024), ratio_range=(0.5, 2.0), keep_ratio=True),
    # allow_negative_crop: crops without boxes are valid (all-negative or not det-labeled samples)
    dict(type='RandomCrop', crop_size=(800, 800), allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(
        type='PackMultiTaskInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'labeled_tasks', 'instances')),
]

train_dataloader = dict(
    batch_size=1,  # per GPU: 8 GPUs x 1 = the batch of 8 of Table 10
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,  # with the data preprocessor's non_blocking: the image copy overlaps the previous step
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/train.json',
        data_prefix=dict(img='', seg=''),
        metainfo=metainfo,
        tasks=('det', 'seg'),
        split_file=None,
        filter_cfg=dict(labeled='any'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/val.json',
        data_prefix=dict(img='', seg=''),
        metainfo=metainfo,
        tasks=('det', 'seg'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# each task of the dataset with its default metric (TaskData.metric: COCO bbox mAP, mIoU), plus multitask/gmean
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
