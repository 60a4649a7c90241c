"""FixMatch* and Dense FixMatch for the multi-task model (Eq. 3-5)."""
import copy
import math
from typing import Dict, Optional

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmengine.logging import MessageHub
from torch.utils._pytree import tree_map

from ..utils import section
from .multitask_detseg import MultiTaskDetSeg

SEMI_TRAIN_KEYS = ('unsup_on', 'unsup_weight', 'rampup_ratio', 'rampup_iters')


def sigmoid_rampup(step: int, length: int) -> float:
    """The sigmoid-shaped ramp of Tarvainen & Valpola: ``exp(-5 (1 - t/T)^2)`` for t < T, then 1."""
    if length <= 0 or step >= length:
        return 1.0
    phase = 1.0 - max(step, 0) / length
    return float(math.exp(-5.0 * phase * phase))


@MODELS.register_module()
class MultiTaskSemiSupervised(BaseDetector):
    """Student + EMA teacher for semi-supervised multi-task learning on partially labeled batches.

    Call flow of :meth:`loss` for a batch of weak views alpha(x) (the data pipeline's augmentation)::

        weak inputs (B, 3, H, W) ──────────────────────────────────────────────┐
          │ samples U that need an unsupervised loss for some task t            │
          ├─► teacher (eval, no grad) on weak[U] ─► per task: sigma_t ─► pseudo-labels (weak-view pixels)
          └─► StrongAugment(weak[U]) ─► strong[U], matrices M (|U|, 3, 3) = A o alpha^-1
                                          │                       │
                                          │      task.warp_pseudo_labels(pseudo, M) ─► targets in strong view
                                          ▼                                         │
        student on cat(weak[L], strong[U]) (one backbone pass) ─► per task t:       │
            L_s,t on weak outputs of B^l_t (samples labeled for t, Eq. 3)           │
            L_u,t on strong outputs of B^u_t vs warped pseudo-labels (Eq. 4) ◄──────┘
        L = sum_t gamma_t (L_s,t + lambda_t L_u,t)                                  (Eq. 5)

    L is the samples labeled for at least one task (a sample labeled for none has no weak-view term in Eq. 3-5,
    so its weak view is not passed through the student). B^u_t is the samples not labeled for t
    (``unsup_on='unlabeled'``) or all samples (``'all'``). lambda_t ramps
    up along a sigmoid over the first ``rampup_ratio`` of training (or ``rampup_iters``) to ``unsup_weight[t]``.
    FixMatch* is this model with ``strong_aug.geometric=False`` (all matrices are the identity, the warp leaves
    labels in place); Dense FixMatch uses the affine ops too. Losses are logged as ``'{t}.sup.loss_*'``,
    ``'{t}.unsup.loss_*'`` (weighted), ``'{t}.lambda'`` and task statistics such as
    ``'det.pseudo_boxes_per_img'``.

    The teacher follows the student through :class:`EMATeacherHook` (decay 0.99, Table 10), stays in eval mode
    and is what :meth:`predict` uses by default (``semi_test_cfg.predict_on='teacher'``); mmdet's
    ``TeacherStudentValLoop`` evaluates both. A checkpoint of :class:`MultiTaskDetSeg` (keys without
    ``student.``/``teacher.``) loads into both.

    Args:
        detector (dict): The :class:`MultiTaskDetSeg` config, built twice (student and teacher).
        strong_aug (dict): The strong augmentation (``StrongAugment``) config.
        semi_train_cfg (dict): ``unsup_on`` ('unlabeled' | 'all'), ``unsup_weight`` (dict task -> lambda_t max,
            default 1), ``rampup_ratio`` (fraction of ``max_iters``, default 0.05) or ``rampup_iters``.
        semi_test_cfg (dict, optional): ``predict_on`` ('teacher' | 'student').
        data_preprocessor (dict, optional): The ``DetDataPreprocessor`` config (normalisation is undone before
            the strong augmentation and redone after it).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 detector: dict,
                 strong_aug: dict,
                 semi_train_cfg: dict,
                 semi_test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.student: MultiTaskDetSeg = MODELS.build(detector)
        self.teacher: MultiTaskDetSeg = MODELS.build(copy.deepcopy(detector))
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.strong_aug = MODELS.build(strong_aug)
        unknown = set(semi_train_cfg) - set(SEMI_TRAIN_KEYS)
        if unknown:
            raise KeyError(f'semi_train_cfg: unknown key(s) {sorted(unknown)}; known: {list(SEMI_TRAIN_KEYS)}')
        self.semi_train_cfg = dict(semi_train_cfg)
        self.unsup_on = self.semi_train_cfg.get('unsup_on', 'unlabeled')
        if self.unsup_on not in ('unlabeled', 'all'):
            raise ValueError(f"semi_train_cfg.unsup_on must be 'unlabeled' or 'all', got {self.unsup_on!r}")
        weights = self.semi_train_cfg.get('unsup_weight', {})
        unknown = set(weights) - set(self.student.tasks)
        if unknown:
            raise KeyError(f'semi_train_cfg.unsup_weight: unknown task(s) {sorted(unknown)}')
        self.unsup_weight = {t: float(weights.get(t, 1.0)) for t in self.student.tasks}
        self.semi_test_cfg = dict(semi_test_cfg or dict(predict_on='teacher'))

    # ----------------------------------------------------------------------------------- helpers
    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # BN running statistics and no dropout, always
        return self

    def rampup(self) -> float:
        """The current ramp-up factor in [0, 1] (from the Runner's iteration counter)."""
        hub = MessageHub.get_current_instance()
        step = hub.get_info('iter', 0)
        length = self.semi_train_cfg.get('rampup_iters')
        if length is None:
            length = int(round(self.semi_train_cfg.get('rampup_ratio', 0.05) * hub.get_info('max_iters', 0)))
        return sigmoid_rampup(step, length)

    def _to_unit_range(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalised network inputs -> RGB in [0, 1] (what the strong augmentation expects)."""
        pre = self.data_preprocessor
        return (inputs * pre.std + pre.mean) / 255.0

    def _normalise(self, imgs: torch.Tensor) -> torch.Tensor:
        pre = self.data_preprocessor
        return (imgs * 255.0 - pre.mean) / pre.std

    # -------------------------------------------------------------------------------------- loss
    def loss(self, batch_inputs: torch.Tensor, batch_data_samples) -> dict:
        tasks = self.student.tasks
        labeled = {name: task.labeled_mask(batch_data_samples) for name, task in tasks.items()}
        unsup_idx = {name: [i for i, lab in enumerate(mask) if self.unsup_on == 'all' or not lab]
                     for name, mask in labeled.items()}
        union = sorted(set().union(*unsup_idx.values()))
        # weak views enter the student only where some task has a label for them: nothing in Eq. 3-5 uses the
        # weak-view outputs of a sample labeled for no task (its terms are all on the strong view)
        weak_idx = [i for i in range(len(batch_data_samples)) if any(mask[i] for mask in labeled.values())]
        device = batch_inputs.device
        weak = batch_inputs.index_select(0, torch.as_tensor(weak_idx, dtype=torch.long, device=device))
        pseudo = {}
        strong_u = batch_inputs[:0]
        if union:
            weak_u = batch_inputs.index_select(0, torch.as_tensor(union, dtype=torch.long, device=device))
            samples_u = [batch_data_samples[i] for i in union]
            with torch.no_grad():
                with section(self, 'teacher_forward'):
                    feats_t = self.teacher.extract_feat(weak_u)
                    outs_t = {t: self.teacher.tasks[t](feats_t) for t in tasks if unsup_idx[t]}
                with section(self, 'pseudo_label_warp'):
                    pseudo = {t: self.teacher.tasks[t].pseudo_label(o, samples_u) for t, o in outs_t.items()}
                with section(self, 'strong_aug'):
                    strong_u, matrices = self.strong_aug(self._to_unit_range(weak_u))
                    strong_u = self._normalise(strong_u).to(batch_inputs.dtype)
                with section(self, 'pseudo_label_warp'):
                    out_size = tuple(batch_inputs.shape[-2:])
                    pseudo = {t: tasks[t].warp_pseudo_labels(lab, matrices, out_size) for t, lab in pseudo.items()}
        return self._student_losses(torch.cat([weak, strong_u]), [batch_data_samples[i] for i in weak_idx],
                                    [batch_data_samples[i] for i in union], unsup_idx, union, pseudo)

    def _student_losses(self, inputs, weak_samples, strong_samples, unsup_idx, union, pseudo) -> dict:
        """One student pass on ``cat(weak, strong)`` views; every task's L_s,t and L_u,t with Eq. 5 weights.

        Args:
            inputs: (len(weak_samples) + len(union), 3, H, W) weak views, then strong views.
            weak_samples: data samples of the weak views (each labeled for at least one task).
            strong_samples: data samples of the strong views (``union``: in B^u_t for some task t).
            unsup_idx: task -> batch indices of B^u_t; union: their sorted union.
            pseudo: task -> warped pseudo-labels of the samples of ``union``.
        """
        n_weak = len(weak_samples)
        position = {i: p for p, i in enumerate(union)}  # batch index -> row among the strong views
        feats = self.student.extract_feat(inputs)
        ramp = self.rampup()
        losses = {}
        for name, task in self.student.tasks.items():
            outs = task(feats)
            weak_outs = tree_map(lambda t: t[:n_weak], outs)
            sup = task.masked_loss(weak_outs, weak_samples) if n_weak else dict(task.subset_loss(outs, [], None),
                                                                            num_labeled=inputs.new_tensor(0.))
            losses.update(self.student.weight_losses(f'{name}.sup', task.loss_weight, sup))
            strong_outs = tree_map(lambda t: t[n_weak:], outs)
            pos = [position[i] for i in unsup_idx[name]]
            if pos:
                labels = task.take(pseudo[name], pos)
                samples = [strong_samples[p] for p in pos]
                unsup = task.subset_loss(strong_outs, pos, lambda o: task.unsup_loss(o, samples, labels))
                stats = task.pseudo_stats(labels)
            else:
                unsup = task.subset_loss(outs, [], None)
                stats = {}
            lam = self.unsup_weight[name] * ramp
            losses.update(self.student.weight_losses(f'{name}.unsup', task.loss_weight * lam, unsup))
            losses[f'{name}.lambda'] = inputs.new_tensor(lam)
            losses.update({f'{name}.{k}': inputs.new_tensor(float(v)) for k, v in stats.items()})
        return losses

    # ------------------------------------------------------------------------------ predict etc.
    def _predictor(self) -> MultiTaskDetSeg:
        predict_on = self.semi_test_cfg.get('predict_on', 'teacher')
        if predict_on not in ('teacher', 'student'):
            raise ValueError(f"semi_test_cfg.predict_on must be 'teacher' or 'student', got {predict_on!r}")
        return getattr(self, predict_on)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples, rescale: bool = True):
        return self._predictor().predict(batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: torch.Tensor, batch_data_samples=None):
        return self._predictor()._forward(batch_inputs, batch_data_samples)

    def extract_feat(self, batch_inputs: torch.Tensor):
        return self._predictor().extract_feat(batch_inputs)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Load a supervised :class:`MultiTaskDetSeg` checkpoint into both student and teacher."""
        own = [k for k in state_dict if k.startswith(prefix)]
        if own and not any(k[len(prefix):].startswith(('student.', 'teacher.', 'strong_aug.')) for k in own):
            for k in own:
                value = state_dict.pop(k)
                rest = k[len(prefix):]
                state_dict[f'{prefix}student.{rest}'] = value
                state_dict[f'{prefix}teacher.{rest}'] = value
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
