"""The attribute task's data side: ``attributes`` of an annotation entry, loaded, packed, withheld, written."""
import numpy as np
import torch

from ..task_data import TaskData, register_task_data

#: the target of an attribute without a value (``undefined`` in BDD100K, or not labeled)
NO_LABEL = -1


@register_task_data
class AttributesData(TaskData):
    """Attributes: ``"attributes": {"weather": "clear", ...}`` per entry, classes in ``metainfo['attr_classes']``.

    ``metainfo['attr_classes']`` is ``{attribute: [class name, ...]}``; its order is the order of
    ``gt_attributes``. A value ``undefined`` (or an attribute missing from the entry) is ``-1`` (no target); an
    unknown value is an error naming the file, the image and the attribute. Loaded into ``gt_attributes`` (A,)
    int64, all ``-1`` for a sample not labeled for the task; packed into ``gt_attributes`` (withheld:
    ``withheld_attributes``); evaluated by :class:`AttributeMetric` (``macro_f1``, the mean over attributes, in
    ``multitask/gmean``).
    """

    name = 'attr'
    required_meta = ('attr_classes', )
    withheld_field = 'withheld_attributes'
    metric = dict(type='AttributeMetric')
    main_key = ('macro_f1', 1.0)
    meta_keys = {}

    def parse(self, raw, info, labeled, dataset) -> None:
        classes = dataset._metainfo['attr_classes']
        values = raw.get('attributes') or {}
        if labeled and not isinstance(values, dict):
            raise ValueError(f'{dataset.ann_file}: image {raw["img_path"]}: "attributes" must be an object')
        labels = []
        for attr, names in classes.items():
            value = values.get(attr, 'undefined') if labeled else 'undefined'
            if value == 'undefined':
                labels.append(NO_LABEL)
            elif value in names:
                labels.append(list(names).index(value))
            else:
                raise ValueError(f'{dataset.ann_file}: image {raw["img_path"]}: unknown {attr} {value!r}; known: '
                                 f'{list(names)}')
        info['gt_attributes'] = labels

    def load(self, results, loader, labeled) -> None:
        if 'gt_attributes' not in results:
            raise KeyError(f'sample {results.get("img_path")} has no gt_attributes; use it with MultiTaskDataset')
        values = np.asarray(results['gt_attributes'], dtype=np.int64)
        results['gt_attributes'] = values if labeled else np.full_like(values, NO_LABEL)

    def take_withheld(self, results):
        values = results['gt_attributes']
        results['gt_attributes'] = np.full_like(values, NO_LABEL)
        return {self.withheld_field: torch.as_tensor(values, dtype=torch.long)}

    def pack(self, results, data_sample) -> None:
        data_sample.gt_attributes = torch.as_tensor(results['gt_attributes'], dtype=torch.long)

    def check_prediction_meta(self, dataset_meta, task, source, options) -> None:
        """``attr_classes`` with the task's attributes, each with as many class names as its classifier."""
        names = dataset_meta.get('attr_classes')
        if not names:
            raise KeyError(f'{source}: no "attr_classes" (the attribute class names)')
        sizes = {a: len(v) for a, v in names.items()}
        if sizes != dict(task.attributes):
            raise ValueError(f'{source}: attr_classes has {sizes} classes per attribute, the attribute task '
                             f'{dict(task.attributes)}')

    def prediction_to_json(self, data_sample, dataset_meta, options):
        """``{"attributes": {attribute: {"label": class name, "score": probability}}}`` for ``tools/infer.py``."""
        if 'attr_classes' not in dataset_meta:
            raise KeyError('AttributesData: the metainfo has no "attr_classes" (the attribute class names)')
        labels, scores = data_sample.pred_attributes.tolist(), data_sample.pred_attribute_scores.tolist()
        return dict(
            attributes={
                attr: dict(label=names[label], score=float(score))
                for (attr, names), label, score in zip(dataset_meta['attr_classes'].items(), labels, scores)
            })
