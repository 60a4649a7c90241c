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
_base_ = './cityscapes_multitask.py'  # the same pipelines, loaders and evaluator; BDD100K's data and classes

data_root = 'data/bdd100k/'

# Table 9, in BDD100K's order; colours of BDD100K's label table (= Cityscapes' colours of these classes)
det_classes = ('pedestrian', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle', 'traffic light',
               'traffic sign')
det_palette = [(220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230),
               (119, 11, 32), (250, 170, 30), (220, 220, 0)]
num_det_classes = len(det_classes)
# segmentation: the 19 Cityscapes trainIds, classes and palette inherited
# segmentation maps and evaluation in trainIds: no label-id mapping for tools/infer.py's PNGs
metainfo = dict(classes=det_classes, palette=det_palette, seg_label_ids=None)

# Table 10: resize scale 0.5-2 of BDD100K's 1280x720 (Cityscapes' pipeline, only the base scale differs)
train_pipeline = [
    dict(step, scale=(1280, 720)) if step['type'] == 'RandomResize' else step for step in _base_.train_pipeline
]
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
