# Dense FixMatch: FixMatch* plus equivariance to the affine RandAugment ops (shear, translate, rotate) and to a
# horizontal flip drawn after them with p = 0.5 (StrongAugment.hflip_prob, as the authors' BatchRandAugment),
# whose per-sample geometry warps the teacher's pseudo-labels (boxes and masks) into the strong view (Eq. 2, 4).
_base_ = './fixmatch.py'
model = dict(strong_aug=dict(geometric=True))
