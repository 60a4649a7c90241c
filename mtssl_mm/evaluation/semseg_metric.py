"""mmdet's ``SemSegMetric`` with the pixel accuracy that its name promises."""
from collections import OrderedDict

from mmdet.evaluation import SemSegMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class PixelAccSemSegMetric(SemSegMetric):
    """mmdet's :class:`~mmdet.evaluation.SemSegMetric` (mIoU, mAcc, ... in %), with ``aAcc`` the pixel accuracy.

    mmdet 3.3 computes ``aAcc`` as ``area_intersect / area_label`` *per class* and then averages over the classes,
    so it always equals ``mAcc`` (a map right on 90 % of its pixels, all of one class, reports 50). Here it is the
    share of labeled pixels predicted right, ``sum_c intersect_c / sum_c label_c`` (in %), as mmseg's
    ``IoUMetric`` computes it. Every other key is mmdet's.
    """

    def get_return_metrics(self, results: list) -> dict:
        metrics = super().get_return_metrics(results)
        intersect = sum(r['area_intersect'] for r in results)
        labeled = sum(r['area_label'] for r in results)
        ret = OrderedDict(aAcc=(intersect.sum() / labeled.sum()).cpu().numpy())  # a scalar: nanmean leaves it
        ret.update((k, v) for k, v in metrics.items() if k != 'aAcc')
        return ret
