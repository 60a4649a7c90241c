"""Pack a partially labeled sample: mmdet's packing plus the tasks it is labeled for."""
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS

from ...tasks.task_data import task_data

DEFAULT_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction',
                     'labeled_tasks')


@TRANSFORMS.register_module()
class PackMultiTaskInputs(PackDetInputs):
    """:class:`mmdet.datasets.transforms.PackDetInputs` that always carries ``labeled_tasks`` in the metainfo.

    Outputs ``inputs`` (3, H, W) uint8 and a ``DetDataSample`` with what mmdet packs (``gt_instances``
    (non-ignored boxes), ``ignored_instances`` (crowd / ignore boxes), ``gt_sem_seg.sem_seg`` (1, H, W)), the
    fields each task of ``results['tasks']`` packs itself (:meth:`TaskData.pack`, e.g. ``gt_attributes``) and
    the metainfo ``labeled_tasks`` (tuple of task names) and ``tasks`` (the dataset's tasks, when it set them).
    Add ``'instances'`` to ``meta_keys`` in validation pipelines: COCO evaluation reads the original-resolution
    boxes from there.

    Withheld labels (``results['withheld_tasks']``, see ``MultiTaskDataset(withheld_labels=True)``) arrive in the
    training keys, moved by the pipeline like real labels. Each withheld task's data side *moves* them out of
    them here (:meth:`TaskData.take_withheld`) into its ``withheld_field``: a withheld ``det`` gives
    ``withheld_instances`` (InstanceData: ``bboxes`` (N, 4) float32 tensor in input pixels, ``labels`` (N,) int64;
    crowd / ignore boxes are left out) and empty ``gt_instances`` / ``ignored_instances``; a withheld ``seg``
    gives ``withheld_sem_seg.sem_seg`` (1, H, W) uint8 and an all-``ignore_index`` ``gt_sem_seg``. The training
    fields are then exactly those of the same sample without withheld labels; the metainfo gains
    ``withheld_tasks``.
    """

    def __init__(self, meta_keys=DEFAULT_META_KEYS):
        meta_keys = tuple(meta_keys)
        for key in ('labeled_tasks', 'withheld_tasks', 'tasks'):
            if key not in meta_keys:
                meta_keys += (key, )
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        if 'labeled_tasks' not in results:
            raise KeyError(f'PackMultiTaskInputs: sample {results.get("img_path")} has no "labeled_tasks"')
        results['labeled_tasks'] = tuple(results['labeled_tasks'])
        if 'tasks' in results:  # the experiment's tasks: the model checks they are its own (BaseTask.check_batch_tasks)
            results['tasks'] = tuple(results['tasks'])
        # full-resolution evaluation pipelines have no Resize; predictions are then rescaled by 1
        results.setdefault('scale_factor', (1.0, 1.0))
        withheld = {}
        if 'withheld_tasks' in results:
            results['withheld_tasks'] = tuple(results['withheld_tasks'])
            for name in results['withheld_tasks']:
                withheld.update(task_data(name, 'PackMultiTaskInputs').take_withheld(results))
        packed = super().transform(results)
        sample = packed['data_samples']
        for name in results.get('tasks', ()):  # absent on the inference path (no labels loaded)
            task_data(name, 'PackMultiTaskInputs').pack(results, sample)
        for key, value in withheld.items():
            setattr(sample, key, value)
        return packed
