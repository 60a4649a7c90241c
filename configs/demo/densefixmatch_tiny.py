# Dense FixMatch on the tiny CPU model: FixMatch* plus the affine ops, whose geometry moves the pseudo-labels.
_base_ = './fixmatch_tiny.py'
model = dict(strong_aug=dict(geometric=True))
