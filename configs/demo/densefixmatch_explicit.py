# make demo: Dense FixMatch with explicit sampling. As configs/cityscapes_lowdata/densefixmatch_explicit.py is the
# FixMatch* config plus the affine ops, this is the demo's FixMatch* config (same model, crops, optimiser,
# schedule; tests/test_demo.py checks it) plus the affine ops.
_base_ = './fixmatch_explicit.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))  # + the weak view's flip (Table 10)
