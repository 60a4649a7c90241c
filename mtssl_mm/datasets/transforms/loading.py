"""Load the labels a sample has, and mark the ones it has not."""
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS

from ...tasks.task_data import task_data


@TRANSFORMS.register_module()
class LoadMultiTaskAnnotations(LoadAnnotations):
    """Load the labels of a partially labeled sample, task by task.

    Runs after ``LoadImageFromFile``. For each task of the experiment (``results['tasks']``, set by
    :class:`MultiTaskDataset`) the task's data side (:data:`~mtssl_mm.tasks.TASK_DATA`) loads its labels when the
    sample is labeled for it (``results['labeled_tasks']``), and its "empty" value otherwise -- e.g. boxes
    ``gt_bboxes`` (N, 4) with N = 0 (:class:`~mtssl_mm.tasks.DetectionData`), a map ``gt_seg_map`` full of
    ``ignore_index`` (:class:`~mtssl_mm.tasks.SegmentationData`) -- so that geometric transforms and batching
    treat every sample alike; ``labeled_tasks`` is what tells the model that a sample has no target for a task.

    Withheld tasks (``results['withheld_tasks']``, :class:`MultiTaskDataset` with ``withheld_labels=True``) are
    loaded exactly as labeled ones, into the same keys, so that every geometric transform moves them like real
    labels; :class:`PackMultiTaskInputs` moves them out of the training fields.

    Args:
        ignore_index (int): Value of unlabeled pixels. Defaults to 255.
        **kwargs: As :class:`mmdet.datasets.transforms.LoadAnnotations` (its loaders read the files; which
            labels are loaded is decided per task, not by ``with_bbox`` / ``with_seg``).
    """

    def __init__(self, ignore_index=255, **kwargs):
        kwargs.update(with_bbox=True, with_label=True, with_seg=True)
        super().__init__(ignore_index=ignore_index, **kwargs)

    def transform(self, results: dict) -> dict:
        for key in ('labeled_tasks', 'tasks'):
            if key not in results:
                raise KeyError(f'LoadMultiTaskAnnotations: sample {results.get("img_path")} has no "{key}"; '
                               'use it with MultiTaskDataset')
        withheld = tuple(results.get('withheld_tasks', ()))
        both = set(withheld) & set(results['labeled_tasks'])
        if both:
            raise ValueError(f'LoadMultiTaskAnnotations: sample {results.get("img_path")}: task(s) {sorted(both)} '
                             'are both labeled and withheld')
        labeled = set(results['labeled_tasks']) | set(withheld)
        for name in results['tasks']:
            task_data(name, 'LoadMultiTaskAnnotations').load(results, self, name in labeled)
        return results
