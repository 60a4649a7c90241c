# FixMatch*, Cityscapes low-data scenario (a) (4.1, Table 1 (a): every image labeled for detection, N for
# segmentation; split from `make_partial_split.py --scenario a`), explicit sampling, unsupervised loss on the
# samples unlabeled for each task. Section 4.1: "the explicit mini-batch sampling setting considers samples
# labeled only for semantic segmentation as labeled and samples them separately from the rest".
_base_ = './fixmatch_explicit.py'
train_dataloader = dict(sampler=dict(labeled=['seg']))
