"""What every task of the multi-task model provides."""
from abc import ABCMeta, abstractmethod
from typing import Any, Dict, List, Sequence

import torch
from mmengine.model import BaseModule
from torch.utils._pytree import tree_flatten, tree_map


class BaseTask(BaseModule, metaclass=ABCMeta):
    """One task of :class:`MultiTaskDetSeg`: its head, its supervised loss and its predictions.

    A task is the unit of extension: adding a task (classification, depth, ...) means a new subclass in
    ``mtssl_mm/tasks/`` and an entry in the model config's ``tasks`` dict -- nothing else changes. The
    semi-supervised wrapper adds, per task, a pseudo-labeling operator and a label warp in the same module.

    Subclasses implement :meth:`forward` (shared backbone features -> raw head outputs, for the whole batch),
    :meth:`loss` (raw outputs of *labeled* samples -> loss dict) and :meth:`predict` (raw outputs -> results
    written into the data samples), and set :attr:`loss_keys`.

    Args:
        name (str): The task's key: in ``labeled_tasks`` metainfo, loss names (``f'{name}.loss_x'``) and the
            evaluator. Set by the model from its ``tasks`` dict.
        loss_weight (float): The task weight gamma_t of Eq. 5. Defaults to 1.0 (Table 10).
        init_cfg (dict, optional): Initialisation config.
    """

    #: names of the loss entries :meth:`loss` returns (used to emit zeros when no sample is labeled)
    loss_keys: Sequence[str] = ()

    def __init__(self, name: str, loss_weight: float = 1.0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.name = name
        self.loss_weight = float(loss_weight)

    def labeled_mask(self, data_samples: Sequence) -> List[bool]:
        """Which samples are labeled for this task, from each sample's ``labeled_tasks`` metainfo."""
        mask = []
        for ds in data_samples:
            if 'labeled_tasks' not in ds:
                raise KeyError(f'data sample {ds.metainfo.get("img_path")} has no "labeled_tasks" metainfo; '
                               'pack samples with PackMultiTaskInputs')
            mask.append(self.name in ds.labeled_tasks)
        return mask

    @abstractmethod
    def forward(self, feats: Sequence[torch.Tensor]) -> Any:
        """Raw head outputs for the whole batch from the backbone's multi-level features."""

    @abstractmethod
    def loss(self, outs: Any, data_samples: Sequence) -> Dict[str, torch.Tensor]:
        """Supervised loss over ``data_samples``, all labeled for this task; ``outs`` holds their outputs."""

    @abstractmethod
    def predict(self, outs: Any, data_samples: Sequence, rescale: bool = True) -> None:
        """Write this task's predictions into ``data_samples``."""

    def masked_loss(self, outs: Any, data_samples: Sequence) -> Dict[str, torch.Tensor]:
        """The supervised loss L_s,t of Eq. 3: computed over the samples labeled for this task only.

        Samples not labeled for the task are removed before the loss (they add neither positives nor
        negatives, and no gradient). The mean runs over the valid elements of the labeled part of the batch
        (pixels, positive anchors), the mmseg/mmdet convention. With no labeled sample, every loss is a zero
        that is still connected to all head outputs, so DDP sees every parameter used on every rank.

        Returns:
            dict: the task's losses (unweighted) and ``num_labeled``, the size of B^l_t.
        """
        mask = self.labeled_mask(data_samples)
        idx = [i for i, m in enumerate(mask) if m]
        leaves = tree_flatten(outs)[0]
        device = leaves[0].device
        if not idx:
            zero = sum(t.sum() for t in leaves) * 0.0
            losses = {k: zero for k in self.loss_keys}
        else:
            if len(idx) < len(mask):
                index = torch.tensor(idx, device=device)
                outs = tree_map(lambda t: t.index_select(0, index), outs)
            losses = self.loss(outs, [data_samples[i] for i in idx])
        losses['num_labeled'] = torch.tensor(float(len(idx)), device=device)
        return losses
