# Dense FixMatch on the Cityscapes train set only (Table 4, column "train"): every image is labeled for both
# tasks, so the unsupervised loss runs on all samples as a regulariser and only implicit sampling applies.
_base_ = './fixmatch_implicit_all.py'
model = dict(strong_aug=dict(geometric=True))  # + affine ops and the strong flip, pseudo-labels warped
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))  # + the weak view's flip (Table 10)
