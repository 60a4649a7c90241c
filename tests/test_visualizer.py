"""MultiTaskLocalVisualizer draws segmentation with the segmentation classes."""
import numpy as np
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData, PixelData

import mtssl_mm  # noqa: F401
from fixtures import DET_CLASSES, SEG_CLASSES


def test_seg_ids_beyond_det_classes_are_drawn_and_ignore_is_not(tmp_path):
    vis = VISUALIZERS.build(dict(type='MultiTaskLocalVisualizer', name='vis_test', alpha=1.0))
    vis.dataset_meta = dict(
        classes=DET_CLASSES,
        seg_classes=SEG_CLASSES,
        seg_palette=[(i * 10, 255 - i * 10, 100) for i in range(len(SEG_CLASSES))])
    seg = torch.full((1, 32, 48), 255, dtype=torch.uint8)
    seg[:, :16] = 13  # 'car' in trainIds: beyond the 8 detection classes
    sample = DetDataSample(metainfo=dict(img_shape=(32, 48)))
    sample.gt_sem_seg = PixelData(sem_seg=seg)
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[2., 2., 20., 12.]]), scores=torch.tensor([0.9]), labels=torch.tensor([2]))
    image = np.zeros((32, 48, 3), np.uint8)
    vis.add_datasample('x', image, sample, draw_gt=True, draw_pred=False, show=False, out_file=str(tmp_path / 'x.png'))
    drawn = vis.get_image()
    assert (tmp_path / 'x.png').is_file()
    assert (drawn[20:, :] == 0).all(), 'ignore pixels must stay undrawn'
    # the car region takes the segmentation palette's colour for trainId 13 (alpha 1)
    assert tuple(drawn[8, 40]) == (130, 125, 100)
