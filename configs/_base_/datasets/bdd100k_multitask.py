# BDD100K merged (section 4.3), as written by tools/dataset_converters/bdd100k.py: annotations/train.json
# (100k-train images labeled for det, 10k-train images labeled for seg, images in both labeled for both,
# the 10k-train images of the 100k val split removed, images without labels kept unlabeled) and
# annotations/val.json (det subset: 100k val, labeled for det only; seg subset: 10k val, seg only; each image
# is evaluated only for its task by MultiTaskMetric).
#
# The detection head must have 10 classes: a config using this file sets
#     model = dict(tasks=dict(det=dict(head=dict(num_classes=10))))
# (it cannot be set here: a key may appear in only one of several _base_ files).
#
# filter_cfg=dict(labeled='any') trains on the partially labeled samples (the supervised baseline);
# semi-supervised configs set train_dataloader.dataset.filter_cfg=None to keep the unlabeled images too, and
# dict(labeled='all') gives the fully-labeled-only baseline.
dataset_type = 'MultiTaskDataset'
data_root = 'data/bdd100k/'

# Table 9, in BDD100K's order; colours of BDD100K's label table (= Cityscapes' colours of these classes)
det_classes = ('pedestrian', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle', 'traffic light',
               'traffic sign')
det_palette = [(220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230),
               (119, 11, 32), (250, 170, 30), (220, 220, 0)]
num_det_classes = len(det_classes)
# BDD100K's semantic segmentation uses the 19 Cityscapes trainIds
seg_classes = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light', 'traffic sign',
               'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck', 'bus', 'train',
               'motorcycle', 'bicycle')
seg_palette = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
               (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
               (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
               (0, 80, 100), (0, 0, 230), (119, 11, 32)]
metainfo = dict(classes=det_classes, palette=det_palette, seg_classes=seg_classes, seg_palette=seg_palette)

# Table 10: resize scale 0.5-2 (of BDD100K's 1280x720), random crop 800x800, horizontal flip
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='RandomResize', scale=(1280, 720), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(800, 800), allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMultiTaskInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadMultiTaskAnnotations'),
    dict(type='PackMultiTaskInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'labeled_tasks',
                    'instances')),
]

train_dataloader = dict(
    batch_size=1,  # per GPU: 8 GPUs x 1 = the batch of 8 of Table 10
    num_workers=4,
    persistent_workers=True,
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

val_evaluator = dict(
    type='MultiTaskMetric',
    task_metrics=dict(
        det=dict(type='CocoMetric', metric='bbox'),
        seg=dict(type='SemSegMetric', iou_metrics=['mIoU'])),
    main_keys=dict(det=('bbox_mAP', 1.0), seg=('mIoU', 0.01)),
    meta_keys=dict(seg=dict(classes='seg_classes', palette='seg_palette')))
test_evaluator = val_evaluator
