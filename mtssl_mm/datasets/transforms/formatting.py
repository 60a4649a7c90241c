"""Pack a partially labeled sample: mmdet's packing plus the tasks it is labeled for."""
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                     'flip_direction', 'labeled_tasks')


@TRANSFORMS.register_module()
class PackMultiTaskInputs(PackDetInputs):
    """:class:`mmdet.datasets.transforms.PackDetInputs` that always carries ``labeled_tasks`` in the metainfo.

    Outputs ``inputs`` (3, H, W) uint8 and a ``DetDataSample`` with ``gt_instances`` (non-ignored boxes),
    ``ignored_instances`` (crowd / ignore boxes), ``gt_sem_seg.sem_seg`` (1, H, W) and the metainfo
    ``labeled_tasks`` (tuple of task names). Add ``'instances'`` to ``meta_keys`` in validation pipelines:
    COCO evaluation reads the original-resolution boxes from there.
    """

    def __init__(self, meta_keys=DEFAULT_META_KEYS):
        meta_keys = tuple(meta_keys)
        if 'labeled_tasks' not in meta_keys:
            meta_keys += ('labeled_tasks', )
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        if 'labeled_tasks' not in results:
            raise KeyError(f'PackMultiTaskInputs: sample {results.get("img_path")} has no "labeled_tasks"')
        results['labeled_tasks'] = tuple(results['labeled_tasks'])
        # full-resolution evaluation pipelines have no Resize; predictions are then rescaled by 1
        results.setdefault('scale_factor', (1.0, 1.0))
        return super().transform(results)
