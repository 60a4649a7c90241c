# Table 10's schedule (poly_sgd_89k.py) with ~150,000 steps for the full Cityscapes experiments (section 4.2).
_base_ = './poly_sgd_89k.py'
max_iters = 150000
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(max_iters=max_iters)
