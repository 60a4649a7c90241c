# Dense FixMatch, BDD100K (section 4.3), explicit sampling, with a third task: image attribute classification
# (weather, scene, time of day; mtssl_mm/tasks/attributes/), labels from the converter's attributes_*.json.
_base_ = './densefixmatch_explicit.py'
model = dict(
    detector=dict(
        tasks=dict(
            attr=dict(type='AttributesTask', in_channels=2048, attributes=dict(weather=6, scene=6, timeofday=3)))))
train_dataloader = dict(
    dataset=dict(tasks=('det', 'seg', 'attr'), task_ann_files=dict(attr='annotations/attributes_train.json')))
val_dataloader = dict(
    dataset=dict(tasks=('det', 'seg', 'attr'), task_ann_files=dict(attr='annotations/attributes_val.json')))
test_dataloader = val_dataloader
