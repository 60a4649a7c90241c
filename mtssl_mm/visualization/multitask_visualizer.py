"""Draw boxes and segmentation of the multi-task model, each with its own class names and colours."""
from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmdet.visualization.palette import get_palette


@VISUALIZERS.register_module()
class MultiTaskLocalVisualizer(DetLocalVisualizer):
    """mmdet's ``DetLocalVisualizer`` with the segmentation classes of a multi-task dataset.

    ``DetLocalVisualizer`` draws ``gt_sem_seg`` / ``pred_sem_seg`` with the *detection* class names and
    palette (``dataset_meta['classes']``), which index the wrong names and fail for segmentation ids beyond
    the detection classes. Here segmentation maps use ``dataset_meta['seg_classes']`` and
    ``dataset_meta['seg_palette']`` (a fixed random palette when absent); boxes are drawn as in mmdet.
    Pixels equal to the map's ``ignore_index`` (255) are left undrawn.
    """

    def _draw_sem_seg(self, image, sem_seg, classes, palette):
        meta = self.dataset_meta or {}
        if 'seg_classes' not in meta:
            raise KeyError('MultiTaskLocalVisualizer: dataset_meta has no "seg_classes"')
        seg_classes = meta['seg_classes']
        seg_palette = get_palette(meta.get('seg_palette'), len(seg_classes))
        return super()._draw_sem_seg(image, sem_seg, seg_classes, seg_palette)
