"""The multi-task model: one backbone, one head per task."""
from typing import Dict, Optional, Sequence

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.models.utils import rename_loss_dict, reweight_loss_dict
from mmdet.registry import MODELS
from mmengine.model import ModuleDict

from ..tasks.base import BaseTask
from ..tasks.task_loss import normalise_globally
from .state_dict_check import check_keys, expected_keys, own_keys


@MODELS.register_module()
class MultiTaskModel(BaseDetector):
    """Shared backbone with one head per task, trained on partially labeled batches.

    Call flow (one backbone pass serves every task)::

        inputs (B, 3, H, W), normalised, padded to a multiple of 32
          │
          ▼
        backbone (ResNet-50) ──► feats: C2..C5, strides 4, 8, 16, 32 (see ``backbone.strides``)
          │
          ├──► tasks.det (detection):    FPN ─► RetinaHead ─► cls/box maps per level
          ├──► tasks.seg (segmentation): ASPP(C5) + decoder(C2) ─► logits (B, K, H/4, W/4)
          └──► any other task of ``tasks`` (e.g. tasks.attr, image attributes): its head on the features

        loss():    per task t, L_s,t over the samples whose ``labeled_tasks`` contain t (Eq. 3), each loss sum
                   divided by its count of valid elements over the global batch (one all_reduce under DDP,
                   see ``tasks/task_loss.py``); total = sum_t gamma_t * L_s,t; keys ``'{t}.loss_*'`` (and
                   ``'{t}.num_labeled'``), valued as the global batch's (the gradient is this rank's share)
        predict(): ``pred_instances`` and ``pred_sem_seg`` in each data sample, from one backbone pass; with
                   ``val_losses``, also each task's supervised loss on the samples labeled for it, from the
                   same outputs (``task_losses``, reported by ``MultiTaskMetric`` as ``'{t}/val_loss_*'``)

    Loading a checkpoint whose keys do not fit (missing or unexpected keys, a semi-supervised checkpoint: export it
    with ``tools/export_teacher.py``) raises :class:`CheckpointKeysError`, also through mmengine's non-strict
    ``load_from``/``--resume``.

    Args:
        backbone (dict): Backbone config (mmdet ``ResNet``; its ``out_indices`` must cover what the heads
            read: C2..C5 for RetinaNet-FPN and DeepLabV3+).
        tasks (dict): Task name -> task config (a registered :class:`BaseTask`), e.g.
            ``dict(det=dict(type=<the detection task>, ...), seg=dict(...))`` (``configs/_base_/models/``). Every entry
            is built: a config selects tasks by naming them (single-task baselines:
            ``model = dict(tasks=dict(_delete_=True, det=_base_.model.tasks.det))``); a task set to ``None``
            is an error (removing tasks by name would let a task added later join every such baseline).
        predict_tasks (Sequence[str], optional): Tasks run by ``predict``; default all (``tools/test.py
            --tasks det`` runs one alone).
        val_losses (bool): ``predict`` also computes each task's supervised loss on the samples labeled for it
            (validation and test sets with labels; Table 7's validation losses). Defaults to True.
        data_preprocessor (dict, optional): mmdet ``DetDataPreprocessor`` config (``pad_seg=True``).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 tasks: Dict[str, dict],
                 predict_tasks: Optional[Sequence[str]] = None,
                 val_losses: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        dropped = [name for name, cfg in tasks.items() if cfg is None]
        if dropped:
            keep = [name for name, cfg in tasks.items() if cfg is not None]
            raise ValueError(f'MultiTaskModel: task(s) {dropped} set to None. Select the tasks to train by name '
                             'instead of removing the others, e.g. model = dict(tasks=dict(_delete_=True, ' +
                             ', '.join(f'{t}=_base_.model.tasks.{t}' for t in keep) + ')) (semi-supervised: '
                             'model.detector.tasks), and the datasets\' tasks=(...) likewise')
        if not tasks:
            raise ValueError('MultiTaskModel: `tasks` is empty')
        self.backbone = MODELS.build(backbone)
        # mmengine's ModuleDict (not torch's) so that init_weights reaches every task's head
        self.tasks = ModuleDict({name: MODELS.build(dict(cfg, name=name)) for name, cfg in tasks.items()})
        self.predict_tasks = tuple(predict_tasks) if predict_tasks is not None else tuple(self.tasks)
        self.val_losses = bool(val_losses)
        unknown = set(self.predict_tasks) - set(self.tasks)
        if unknown:
            raise KeyError(f'MultiTaskModel: predict_tasks {sorted(unknown)} not in tasks {list(self.tasks)}')

    def extract_feat(self, batch_inputs: torch.Tensor):
        """Backbone features, a tuple of (B, C_l, H/s_l, W/s_l) tensors."""
        return self.backbone(batch_inputs)

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples) -> dict:
        BaseTask.check_batch_tasks(list(self.tasks), batch_data_samples)
        feats = self.extract_feat(batch_inputs)
        terms = {name: task.masked_loss(task(feats), batch_data_samples) for name, task in self.tasks.items()}
        losses = {}
        for name, task_losses in normalise_globally(terms).items():
            losses.update(self.weight_losses(name, self.tasks[name].loss_weight, task_losses))
        return losses

    @staticmethod
    def weight_losses(name: str, weight: float, losses: dict) -> dict:
        """Prefix a task's losses with its name and scale the ``loss*`` entries by gamma_t (Eq. 5), with mmdet's
        semi-supervised helpers (``rename_loss_dict``, ``reweight_loss_dict``: lists of per-level losses too)."""
        return rename_loss_dict(f'{name}.', reweight_loss_dict(dict(losses), weight))

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples, rescale: bool = True):
        feats = self.extract_feat(batch_inputs)
        for name in self.predict_tasks:
            task = self.tasks[name]
            outs = task(feats)
            if self.val_losses:
                task.record_losses(outs, batch_data_samples)
            task.predict(outs, batch_data_samples, rescale=rescale)
        return batch_data_samples

    def _forward(self, batch_inputs: torch.Tensor, batch_data_samples=None) -> dict:
        feats = self.extract_feat(batch_inputs)
        return {name: task(feats) for name, task in self.tasks.items()}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Refuse a state dict whose keys under ``prefix`` do not fit (``state_dict_check.py``), then load it."""
        check_keys(type(self).__name__, own_keys(state_dict, prefix), expected_keys(self), prefix, local_metadata)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
