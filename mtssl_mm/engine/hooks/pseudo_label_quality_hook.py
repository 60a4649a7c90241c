"""How good are the pseudo-labels? Measured against labels a split file withheld, logged every N iterations."""
from typing import Dict

import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce
from mmengine.hooks import Hook

from .semi_model import semi_model

Counts = Dict[str, Dict[str, torch.Tensor]]


def add_counts(total: Counts, counts: Counts) -> Counts:
    """``total + counts`` key by key (task -> name -> tensor); ``total`` is updated and returned."""
    for task, sums in counts.items():
        acc = total.setdefault(task, {})
        for key, value in sums.items():
            value = value.detach()
            acc[key] = acc[key] + value if key in acc else value.clone()
    return total


def reduce_counts(counts: Counts) -> Counts:
    """Sum every count over the ranks (one ``all_reduce`` per tensor, in sorted key order; a no-op without a
    process group). Sums are additive, so metrics of the result are those of the global batch."""
    out = {}
    for task in sorted(counts):
        out[task] = {}
        for key in sorted(counts[task]):
            value = counts[task][key].clone()
            all_reduce(value, op='sum')
            out[task][key] = value
    return out


@HOOKS.register_module()
class PseudoLabelQualityHook(Hook):
    """Measure the teacher's pseudo-labels against withheld labels, as the student is taught them.

    Needs ``train_dataloader.dataset.withheld_labels=True`` (:class:`~mtssl_mm.datasets.MultiTaskDataset`): a
    sample unlabeled for a task only because the split file withheld its label still carries that label, apart
    from the training fields. The hook turns on :attr:`MultiTaskSemiSupervised.measure_pseudo_quality` (the
    model then runs each task's ``quality_counts`` over the samples of B^u_t with withheld labels, in the strong
    view, with the same warp as the pseudo-labels; no loss sees them), adds the counts of every iteration, and
    every ``interval`` iterations (and at the last one) sums them over the ranks, computes each task's
    ``quality_metrics`` and writes them with ``runner.visualizer.add_scalars`` (``vis_data/scalars.json``,
    TensorBoard) and one log line, as ``'{task}.pl/{metric}'``:

    - segmentation: ``seg.pl/acc``, ``seg.pl/mIoU`` (warped pseudo-labels vs warped withheld maps, over pixels
      where both are valid), ``seg.pl/in_view`` (share of the strong views' pixels that come from inside the
      weak views);
    - detection, per score threshold ``thr`` of the detection task's ``quality_score_thrs`` (sigma_det included):
      ``det.pl/precision@{thr:g}``, ``det.pl/recall@{thr:g}`` (IoU >= 0.5, same class, greedy by score) and
      ``det.pl/boxes_per_img@{thr:g}``.

    A metric whose denominator is 0 in an interval (no pseudo box, no withheld box) is not written. An interval
    without any withheld label warns once (set ``train_dataloader.dataset.withheld_labels=True``, with a split).

    Args:
        interval (int): Write the metrics every ``interval`` training iterations. Defaults to 50.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 50) -> None:
        if int(interval) < 1:
            raise ValueError(f'PseudoLabelQualityHook: interval must be >= 1, got {interval}')
        self.interval = int(interval)
        self._sums: Counts = {}
        self._warned = False

    def before_train(self, runner) -> None:
        semi_model(runner, type(self).__name__).measure_pseudo_quality = True
        self._sums = {}

    def after_train(self, runner) -> None:
        semi_model(runner, type(self).__name__).measure_pseudo_quality = False

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = semi_model(runner, type(self).__name__)
        counts, model.pseudo_quality_counts = model.pseudo_quality_counts, None
        if counts is None:
            raise RuntimeError('PseudoLabelQualityHook: the model stored no pseudo_quality_counts in this '
                               'iteration (was MultiTaskSemiSupervised.loss called?)')
        add_counts(self._sums, counts)
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self._write(runner, model)

    def _write(self, runner, model) -> None:
        sums, self._sums = reduce_counts(self._sums), {}
        if not sums:
            return
        images = {task: int(c['num_images']) for task, c in sums.items() if 'num_images' in c}
        if not any(images.values()):
            if not self._warned:
                runner.logger.warning(
                    'PseudoLabelQualityHook: no sample with withheld labels in the last interval, nothing to '
                    'measure; set train_dataloader.dataset.withheld_labels=True (with a split_file that withholds '
                    'labels, e.g. the low-data configs)')
                self._warned = True
            return
        scalars = {}
        for task, counts in sums.items():
            for key, value in model.teacher.tasks[task].quality_metrics(counts).items():
                scalars[f'{task}.pl/{key}'] = float(value)
        step = runner.iter + 1
        if scalars:
            runner.visualizer.add_scalars(scalars, step=step)
        measured = ', '.join(f'{t} {n}' for t, n in images.items())
        values = '  '.join(f'{k}: {v:.4f}' for k, v in scalars.items())
        runner.logger.info(f'Pseudo-label quality at iter {step} (images measured since the last report, all '
                           f'ranks: {measured}): {values}')
