"""Batch-wise, on-device strong augmentation (paper Table 10) and the label transforms that follow it."""
from .label_warp import to_box_coordinates, warp_boxes, warp_boxes_batch, warp_seg_maps
from .strong_augment import StrongAugment
from .strong_params import GEOMETRIC_OPS, PHOTOMETRIC_OPS, TABLE10_MAGNITUDES

__all__ = [
    'StrongAugment', 'PHOTOMETRIC_OPS', 'GEOMETRIC_OPS', 'TABLE10_MAGNITUDES', 'to_box_coordinates', 'warp_seg_maps',
    'warp_boxes', 'warp_boxes_batch'
]
