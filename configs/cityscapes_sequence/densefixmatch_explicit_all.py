# Dense FixMatch, Cityscapes train + train_extra + sequence (4.2), explicit sampling, unsupervised loss on all samples.
_base_ = './fixmatch_explicit_all.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
# + the weak view's horizontal flip (Table 10)
train_dataloader = dict(
    dataset=dict(
        datasets=[dict(part, pipeline=_base_.train_pipeline) for part in _base_.train_dataloader.dataset.datasets]))
