"""FixMatch* and Dense FixMatch for the multi-task model (Eq. 3-5)."""
import copy
import math
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmengine.logging import MessageHub
from torch.utils._pytree import tree_map

from ..tasks.base import BaseTask
from ..tasks.task_loss import normalise_globally
from ..utils import section
from .multitask_detseg import MultiTaskDetSeg
from .state_dict_check import check_keys, expected_keys, is_semi_supervised, own_keys

SEMI_TRAIN_KEYS = ('unsup_on', 'unsup_weight', 'rampup_ratio', 'rampup_iters', 'student_views')
STUDENT_VIEWS = ('all', 'needed')


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
          │ U: samples that need an unsupervised loss for some task t           │
          ├─► teacher (eval, no grad) on weak[U] ─► per task: sigma_t ─► pseudo-labels (weak-view pixels)
          └─► StrongAugment(weak[S]) ─► strong[S], matrices M (|S|, 3, 3) = A o alpha^-1     (U ⊆ S)
                                          │                       │
                                          │      task.warp_pseudo_labels(pseudo, M[U]) ─► targets in strong view
                                          ▼                                         │
        student on cat(weak[L], strong[S]) (one backbone pass) ─► per task t:       │
            L_s,t on weak outputs of B^l_t (samples labeled for t, Eq. 3)           │
            L_u,t on strong outputs of B^u_t vs warped pseudo-labels (Eq. 4) ◄──────┘
        every loss sum / its count over the global batch (one all_reduce, ``tasks/task_loss.py``)
        L = sum_t gamma_t (L_s,t + lambda_t L_u,t)                                  (Eq. 5)

    B^u_t is the samples not labeled for t (``unsup_on='unlabeled'``) or all samples (``'all'``); U is their
    union. What the student sees (``student_views``): ``'all'`` (default, the authors' trainer, which passes
    ``cat(all weak views, all strong views)`` through the student in one pass): L = S = the whole batch, so
    BatchNorm statistics come from as many weak as strong views; ``'needed'``: L = samples labeled for some
    task, S = U -- only the views some loss term uses (cheaper: at low label ratios with ``unsup_on='unlabeled'``
    nearly half the images; BN statistics then come mostly from strong views). The teacher runs on weak[U]
    either way (its outputs elsewhere are unused, and it is in eval mode). lambda_t ramps
    up along a sigmoid over the first ``rampup_ratio`` of training (or ``rampup_iters``) to ``unsup_weight[t]``.
    FixMatch* is this model with ``strong_aug.geometric=False`` (all matrices are the identity, the warp leaves
    labels in place); Dense FixMatch uses the affine ops too. Losses are logged as ``'{t}.sup.loss_*'``,
    ``'{t}.unsup.loss_*'`` (weighted), ``'{t}.lambda'`` and task statistics such as
    ``'det.pseudo_boxes_per_img'``, every value that of the global batch, on every rank, every iteration (the
    normalisers' all_reduce carries them; the gradients stay each rank's share).

    What the student is taught can be watched without changing it: with :attr:`measure_pseudo_quality` (set by
    :class:`PseudoLabelQualityHook`) :meth:`loss` stores :attr:`pseudo_quality_counts`, each task's
    ``quality_counts`` of its warped pseudo-labels against the labels a split file withheld (samples of B^u_t
    with ``withheld_tasks`` metainfo; no loss reads them); with :attr:`record_pseudo_views` (set by
    :class:`PseudoLabelVisHook` for one iteration) it stores :attr:`pseudo_views`, weak and strong views with
    their pseudo-labels. Both are off by default and cost nothing then.

    The teacher follows the student through :class:`EMATeacherHook` (decay 0.99, Table 10), stays in eval mode
    and is what :meth:`predict` uses by default (``semi_test_cfg.predict_on='teacher'``); mmdet's
    ``TeacherStudentValLoop`` evaluates both. A checkpoint of :class:`MultiTaskDetSeg` (keys without
    ``student.``/``teacher.``) loads into both; any checkpoint whose keys do not fit raises
    :class:`CheckpointKeysError` (``state_dict_check.py``), also through mmengine's non-strict ``load_from``.

    Args:
        detector (dict): The :class:`MultiTaskDetSeg` config, built twice (student and teacher).
        strong_aug (dict): The strong augmentation (``StrongAugment``) config.
        semi_train_cfg (dict): ``unsup_on`` ('unlabeled' | 'all'), ``unsup_weight`` (dict task -> lambda_t max,
            default 1), ``rampup_ratio`` (fraction of ``max_iters``, default 0.05) or ``rampup_iters``,
            ``student_views`` ('all' | 'needed', default 'all').
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
        self.student_views = self.semi_train_cfg.get('student_views', 'all')
        if self.student_views not in STUDENT_VIEWS:
            raise ValueError(f'semi_train_cfg.student_views must be one of {STUDENT_VIEWS}, '
                             f'got {self.student_views!r}')
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
    def view_indices(self, batch_data_samples) -> Tuple[List[int], List[int], Dict[str, List[int]], List[int]]:
        """Which views of which samples the student sees, and who is in B^u_t.

        Returns:
            tuple: ``weak_idx`` and ``strong_idx`` (batch indices of the student's weak and strong views, see
            ``student_views``), ``unsup_idx`` (task -> batch indices of B^u_t) and ``union`` (their sorted union,
            the samples the teacher labels; a subset of ``strong_idx``).
        """
        tasks = self.student.tasks
        batch = len(batch_data_samples)
        labeled = {name: task.labeled_mask(batch_data_samples) for name, task in tasks.items()}
        unsup_idx = {name: [i for i, lab in enumerate(mask) if self.unsup_on == 'all' or not lab]
                     for name, mask in labeled.items()}
        union = sorted(set().union(*unsup_idx.values()))
        if self.student_views == 'all':
            weak_idx = strong_idx = list(range(batch))
        else:  # a sample labeled for no task has no weak-view term in Eq. 3-5
            weak_idx = [i for i in range(batch) if any(mask[i] for mask in labeled.values())]
            strong_idx = union
        return weak_idx, strong_idx, unsup_idx, union

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples) -> dict:
        tasks = self.student.tasks
        BaseTask.check_batch_tasks(list(tasks), batch_data_samples)
        weak_idx, strong_idx, unsup_idx, union = self.view_indices(batch_data_samples)
        device = batch_inputs.device

        def rows(idx):
            if len(idx) == len(batch_data_samples):  # the whole batch (student_views='all'): no copy
                return batch_inputs
            return batch_inputs.index_select(0, torch.as_tensor(idx, dtype=torch.long, device=device))

        pseudo, outs_t, matrices = {}, {}, None
        strong = batch_inputs[:0]
        out_size = tuple(batch_inputs.shape[-2:])
        if strong_idx:
            with torch.no_grad():
                if union:
                    samples_u = [batch_data_samples[i] for i in union]
                    with section(self, 'teacher_forward'):
                        feats_t = self.teacher.extract_feat(rows(union))
                        outs_t = {t: self.teacher.tasks[t](feats_t) for t in tasks if unsup_idx[t]}
                    with section(self, 'pseudo_label_warp'):
                        pseudo = {t: self.teacher.tasks[t].pseudo_label(o, samples_u) for t, o in outs_t.items()}
                with section(self, 'strong_aug'):
                    strong, matrices = self.strong_aug(self._to_unit_range(rows(strong_idx)))
                    strong = self._normalise(strong).to(batch_inputs.dtype)
                with section(self, 'pseudo_label_warp'):
                    if union and len(union) < len(strong_idx):
                        row = {i: r for r, i in enumerate(strong_idx)}
                        matrices = matrices[torch.as_tensor([row[i] for i in union], device=matrices.device)]
                    pseudo_weak = pseudo
                    pseudo = {t: tasks[t].warp_pseudo_labels(lab, matrices, out_size) for t, lab in pseudo.items()}
                if self.record_pseudo_views and union:
                    self.pseudo_views = self._record_views(rows(union), strong, strong_idx, union, unsup_idx,
                                                           pseudo_weak, pseudo, batch_data_samples)
        if self.measure_pseudo_quality:
            with torch.no_grad():
                self.pseudo_quality_counts = self._quality_counts(batch_data_samples, unsup_idx, union, outs_t,
                                                                  pseudo, matrices, out_size)
        return self._student_losses(torch.cat([rows(weak_idx), strong]), batch_data_samples, weak_idx, strong_idx,
                                    unsup_idx, union, pseudo)

    # ------------------------------------------------- what the student is taught (hooks, never a loss)
    #: set by :class:`~mtssl_mm.engine.PseudoLabelQualityHook`: :meth:`loss` then stores
    #: :attr:`pseudo_quality_counts` (task -> the task's ``quality_counts``) every call
    measure_pseudo_quality: bool = False
    pseudo_quality_counts: Optional[Dict[str, Dict[str, torch.Tensor]]] = None
    #: set by :class:`~mtssl_mm.engine.PseudoLabelVisHook` for one call: :meth:`loss` then stores
    #: :attr:`pseudo_views` for the first ``record_pseudo_views`` samples that get pseudo-labels
    record_pseudo_views: int = 0
    pseudo_views: Optional[List[dict]] = None

    def _quality_counts(self, data_samples, unsup_idx, union, outs_t, pseudo, matrices, out_size) -> dict:
        """Every task's ``quality_counts`` over the samples of B^u_t with withheld labels for t (maybe none).

        Withheld labels are read here and nowhere else in the model; nothing computed here reaches a loss.
        """
        union_pos = {i: p for p, i in enumerate(union)}
        counts = {}
        for name, task in self.teacher.tasks.items():
            mask = task.withheld_mask(data_samples)
            members = [i for i in unsup_idx[name] if mask[i]]
            outs = labels = mats = None
            if members:
                pos = [union_pos[i] for i in members]
                index = torch.as_tensor(pos, dtype=torch.long, device=matrices.device)
                outs = tree_map(lambda t: t.index_select(0, index.to(t.device)), outs_t[name])
                labels = task.take(pseudo[name], pos)
                mats = matrices.index_select(0, index)
            counts[name] = task.quality_counts(outs, labels, [data_samples[i] for i in members], mats, out_size)
        return counts

    def _record_views(self, weak, strong, strong_idx, union, unsup_idx, pseudo_weak, pseudo, data_samples):
        """The first ``record_pseudo_views`` samples of ``union``: weak and strong view as (H, W, 3) uint8 RGB
        arrays, and per task it is taught: its pseudo-labels on the weak view (``pseudo``) and warped into the
        strong view (``warped``), on the CPU (InstanceData for boxes, (H, W) tensors for maps)."""
        strong_row = {i: r for r, i in enumerate(strong_idx)}

        def to_uint8(img):  # (3, H, W) normalised RGB -> (H, W, 3) uint8
            return (self._to_unit_range(img[None].float())[0] * 255).round().clamp(0, 255).byte().permute(
                1, 2, 0).cpu().numpy()

        views = []
        for p, i in enumerate(union[:int(self.record_pseudo_views)]):
            taught = [t for t in pseudo if i in unsup_idx[t]]
            first = {}
            for key, labels in (('pseudo', pseudo_weak), ('warped', pseudo)):
                first[key] = {}
                for t in taught:
                    first[key][t] = self.student.tasks[t].take(labels[t], [p])[0].cpu()
            views.append(dict(img_path=data_samples[i].metainfo.get('img_path'), weak=to_uint8(weak[p]),
                              strong=to_uint8(strong[strong_row[i]]), **first))
        return views

    def _student_losses(self, inputs, data_samples, weak_idx, strong_idx, unsup_idx, union, pseudo) -> dict:
        """One student pass on ``cat(weak, strong)`` views; every task's L_s,t and L_u,t with Eq. 5 weights.

        Args:
            inputs: (len(weak_idx) + len(strong_idx), 3, H, W) weak views, then strong views.
            data_samples: the data samples of the whole batch.
            weak_idx, strong_idx: batch indices of the weak and the strong views in ``inputs``.
            unsup_idx: task -> batch indices of B^u_t; union: their sorted union (a subset of ``strong_idx``).
            pseudo: task -> warped pseudo-labels of the samples of ``union``, in its order.
        """
        n_weak = len(weak_idx)
        strong_row = {i: r for r, i in enumerate(strong_idx)}  # batch index -> row among the strong views
        union_pos = {i: p for p, i in enumerate(union)}  # batch index -> position among the pseudo-labels
        feats = self.student.extract_feat(inputs)
        ramp = self.rampup()
        terms, lams = {}, {}
        for name, task in self.student.tasks.items():
            outs = task(feats)
            weak_outs = tree_map(lambda t: t[:n_weak], outs)
            if n_weak:
                terms[f'{name}.sup'] = task.masked_loss(weak_outs, [data_samples[i] for i in weak_idx])
            else:
                terms[f'{name}.sup'] = task.subset_loss(outs, [], None)
                terms[f'{name}.sup'].sums['num_labeled'] = inputs.new_tensor(0.)
            strong_outs = tree_map(lambda t: t[n_weak:], outs)
            members = unsup_idx[name]
            if members:
                labels = task.take(pseudo[name], [union_pos[i] for i in members])
                samples = [data_samples[i] for i in members]
                terms[f'{name}.unsup'] = task.subset_loss(strong_outs, [strong_row[i] for i in members],
                                                          lambda o: task.unsup_loss(o, samples, labels))
            else:  # the same log keys on every rank: zero losses, the statistics of no sample
                labels = None
                terms[f'{name}.unsup'] = task.subset_loss(outs, [], None)
            terms[f'{name}.unsup'].ratios.update(task.pseudo_stats(labels))
            lams[name] = self.unsup_weight[name] * ramp
        normalised = normalise_globally(terms)  # values of the global batch (one all_reduce)
        losses = {}
        for name, task in self.student.tasks.items():
            unsup = dict(normalised[f'{name}.unsup'])
            stats = {k: unsup.pop(k) for k in terms[f'{name}.unsup'].ratios}
            losses.update(self.student.weight_losses(f'{name}.sup', task.loss_weight, normalised[f'{name}.sup']))
            losses.update(self.student.weight_losses(f'{name}.unsup', task.loss_weight * lams[name], unsup))
            losses[f'{name}.lambda'] = inputs.new_tensor(lams[name])
            losses.update({f'{name}.{k}': v for k, v in stats.items()})
        return losses

    # ------------------------------------------------------------------------------ predict etc.
    @property
    def predictor(self) -> MultiTaskDetSeg:
        """The model that predicts (``semi_test_cfg.predict_on``): the EMA teacher by default, or the student.
        Tools reach it through :func:`~mtssl_mm.models.predictor_of`."""
        predict_on = self.semi_test_cfg.get('predict_on', 'teacher')
        if predict_on not in ('teacher', 'student'):
            raise ValueError(f"semi_test_cfg.predict_on must be 'teacher' or 'student', got {predict_on!r}")
        return getattr(self, predict_on)

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples, rescale: bool = True):
        return self.predictor.predict(batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: torch.Tensor, batch_data_samples=None):
        return self.predictor._forward(batch_inputs, batch_data_samples)

    def extract_feat(self, batch_inputs: torch.Tensor):
        return self.predictor.extract_feat(batch_inputs)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Load a semi-supervised checkpoint, or a supervised :class:`MultiTaskDetSeg` one into both student and
        teacher; keys that do not fit raise :class:`CheckpointKeysError`."""
        found = own_keys(state_dict, prefix)
        if found and not is_semi_supervised(found) and not any(k.startswith('strong_aug.') for k in found):
            check_keys(type(self).__name__, found, expected_keys(self.student), prefix, local_metadata,
                       what=' (a MultiTaskDetSeg checkpoint, for student and teacher)')
            for rest in found:
                value = state_dict.pop(prefix + rest)
                state_dict[f'{prefix}student.{rest}'] = value
                state_dict[f'{prefix}teacher.{rest}'] = value
        else:
            check_keys(type(self).__name__, found, expected_keys(self), prefix, local_metadata)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
