"""The attribute task's metric: accuracy and macro-F1 per attribute."""
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from .data import NO_LABEL


@METRICS.register_module()
class AttributeMetric(BaseMetric):
    """Accuracy and macro-F1 of each attribute over the samples where it is defined, as fractions.

    Reports ``{a}_accuracy``, ``{a}_macro_f1`` (F1 averaged over the classes that occur in the ground truth or the
    predictions of that attribute) and their means over attributes, ``accuracy`` and ``macro_f1``. Attributes and
    class names come from ``dataset_meta['attr_classes']``. Samples need ``gt_attributes`` and
    ``pred_attributes`` (A,).
    """

    default_prefix = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            for key in ('gt_attributes', 'pred_attributes'):
                if key not in sample:
                    raise KeyError(f'AttributeMetric: sample {sample.get("img_path")} has no {key!r}')
            self.results.append((np.asarray(torch.as_tensor(sample['gt_attributes']).cpu()),
                                 np.asarray(torch.as_tensor(sample['pred_attributes']).cpu())))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        gt = np.stack([r[0] for r in results])
        pred = np.stack([r[1] for r in results])
        out, accs, f1s = {}, [], []
        for j, attr in enumerate(self.dataset_meta['attr_classes']):
            valid = gt[:, j] != NO_LABEL
            if not valid.any():
                continue
            g, p = gt[valid, j], pred[valid, j]
            acc = float((g == p).mean())
            f1 = []
            for c in np.union1d(g, p):
                tp = float(((g == c) & (p == c)).sum())
                denom = float((g == c).sum() + (p == c).sum())
                f1.append(2 * tp / denom)
            out[f'{attr}_accuracy'], out[f'{attr}_macro_f1'] = acc, float(np.mean(f1))
            accs.append(acc)
            f1s.append(out[f'{attr}_macro_f1'])
        if accs:
            out['accuracy'], out['macro_f1'] = float(np.mean(accs)), float(np.mean(f1s))
        return out
