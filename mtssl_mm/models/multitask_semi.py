"""FixMatch* and Dense FixMatch for the multi-task model (Eq. 3-5)."""
import copy
import math
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmengine.logging import MessageHub
from torch.utils._pytree import tree_map

from ..tasks.base import BaseTask
from ..tasks.task_loss import normalise_globally
from ..utils import section
from .multitask_model import MultiTaskModel
from .state_dict_check import check_keys, expected_keys, is_semi_supervised, own_keys

SEMI_TRAIN_KEYS = ('unsup_on', 'unsup_weight', 'rampup_ratio', 'rampup_iters', 'student_views')
STUDENT_VIEWS = ('all', 'needed')


def sigmoid_rampup(step: int, length: int) -> float:
    """The sigmoid-shaped ramp of Tarvainen & Valpola: ``exp(-5 (1 - t/T)^2)`` for t < T, then 1."""
    if length <= 0 or step >= length:
        return 1.0
    phase = 1.0 - max(step, 0) / length
    return float(math.exp(-5.0 * phase * phase))


class ViewPlan:
    """The index bookkeeping of one batch, computed once by :meth:`MultiTaskSemiSupervised.plan`.

    Attributes:
        batch (int): Samples in the batch.
        weak_idx, strong_idx (list[int]): Batch indices of the student's weak and strong views (``student_views``).
        unsup_idx (dict[str, list[int]]): task -> batch indices of B^u_t.
        union (list[int]): Their sorted union U, the samples the teacher labels (a subset of ``strong_idx``).
    """

    def __init__(self, batch: int, weak_idx: List[int], strong_idx: List[int], unsup_idx: Dict[str, List[int]],
                 union: List[int]) -> None:
        self.batch, self.weak_idx, self.strong_idx = batch, weak_idx, strong_idx
        self.unsup_idx, self.union = unsup_idx, union
        self._strong_row = {i: r for r, i in enumerate(strong_idx)}  # batch index -> row among the strong views
        self._union_pos = {i: p for p, i in enumerate(union)}  # batch index -> position in U (pseudo-labels)

    def rows(self, inputs: torch.Tensor, idx: List[int]) -> torch.Tensor:
        """``inputs[idx]`` (no copy for the whole batch)."""
        if len(idx) == self.batch:
            return inputs
        return inputs.index_select(0, torch.as_tensor(idx, dtype=torch.long, device=inputs.device))

    def strong_rows(self, idx: List[int]) -> List[int]:
        """Rows among the strong views of batch indices ``idx``."""
        return [self._strong_row[i] for i in idx]

    def union_positions(self, idx: List[int]) -> List[int]:
        """Positions in U (among the pseudo-labels) of batch indices ``idx``."""
        return [self._union_pos[i] for i in idx]

    def union_rows(self, strong: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The rows of U in a tensor over the strong views (the views themselves or their matrices); None (no
        strong view) stays None."""
        if strong is None or len(self.union) == len(self.strong_idx):
            return strong
        return strong.index_select(0, torch.as_tensor(self.strong_rows(self.union), device=strong.device))


class PseudoBatch(NamedTuple):
    """What the student was taught in one batch, kept for :class:`~mtssl_mm.engine.PseudoLabelVisHook`."""
    weak: torch.Tensor  #: (|U|, 3, H, W) the weak views of U, normalised
    strong: torch.Tensor  #: (|U|, 3, H, W) their strong views, normalised
    pseudo_weak: dict  #: task -> pseudo-labels of U in weak-view pixels
    pseudo: dict  #: task -> the same warped into the strong views
    taught: List[Tuple[str, ...]]  #: per sample of U, the tasks it is taught (t with the sample in B^u_t)
    img_paths: List[str]  #: per sample of U


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

    :meth:`loss` runs these steps: :meth:`plan` (the :class:`ViewPlan`: B^u_t, their union U, the student's weak
    views L and strong views S), :meth:`teacher_pseudo_labels`, :meth:`strong_views` and each task's
    ``warp_pseudo_labels``, :meth:`student_losses`. B^u_t, ``student_views``, the ramp-up of lambda_t, the logged
    values and the hooks that watch the pseudo-labels: ``docs/method.md``.

    Args:
        detector (dict): The :class:`MultiTaskModel` config, built twice (student and teacher).
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
        self.student: MultiTaskModel = MODELS.build(detector)
        self.teacher: MultiTaskModel = MODELS.build(copy.deepcopy(detector))
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

    def to_unit_range(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalised network inputs -> RGB in [0, 1] (what the strong augmentation expects)."""
        pre = self.data_preprocessor
        return (inputs * pre.std + pre.mean) / 255.0

    def normalise(self, imgs: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> normalised network inputs."""
        pre = self.data_preprocessor
        return (imgs * 255.0 - pre.mean) / pre.std

    # -------------------------------------------------------------------------------------- loss
    def plan(self, batch_data_samples) -> ViewPlan:
        """Which views of which samples the student sees, and who is in B^u_t (see ``student_views``)."""
        tasks = self.student.tasks
        batch = len(batch_data_samples)
        labeled = {name: task.labeled_mask(batch_data_samples) for name, task in tasks.items()}
        unsup_idx = {
            name: [i for i, lab in enumerate(mask) if self.unsup_on == 'all' or not lab]
            for name, mask in labeled.items()
        }
        union = sorted(set().union(*unsup_idx.values()))
        if self.student_views == 'all':
            weak_idx = strong_idx = list(range(batch))
        else:  # a sample labeled for no task has no weak-view term in Eq. 3-5
            weak_idx = [i for i in range(batch) if any(mask[i] for mask in labeled.values())]
            strong_idx = union
        return ViewPlan(batch, weak_idx, strong_idx, unsup_idx, union)

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples) -> dict:
        BaseTask.check_batch_tasks(list(self.student.tasks), batch_data_samples)
        plan = self.plan(batch_data_samples)
        out_size = tuple(batch_inputs.shape[-2:])
        samples_u = [batch_data_samples[i] for i in plan.union]
        with torch.no_grad():
            weak_u = plan.rows(batch_inputs, plan.union)
            outs_t, pseudo_weak = self.teacher_pseudo_labels(weak_u, samples_u, plan)
            strong, matrices = self.strong_views(plan.rows(batch_inputs, plan.strong_idx))
            matrices = plan.union_rows(matrices) if plan.union else None
            with section(self, 'pseudo_label_warp'):
                pseudo = {
                    t: self.student.tasks[t].warp_pseudo_labels(lab, matrices, out_size)
                    for t, lab in pseudo_weak.items()
                }
            if self.keep_pseudo_batch and plan.union:
                taught = [tuple(t for t in pseudo if i in plan.unsup_idx[t]) for i in plan.union]
                self.pseudo_batch = PseudoBatch(weak_u, plan.union_rows(strong), pseudo_weak, pseudo, taught,
                                                [ds.metainfo.get('img_path') for ds in samples_u])
            if self.measure_pseudo_quality:
                self.pseudo_quality_counts = self._quality_counts(batch_data_samples, plan, outs_t, pseudo, matrices,
                                                                  out_size)
        return self.student_losses(
            torch.cat([plan.rows(batch_inputs, plan.weak_idx), strong]), batch_data_samples, plan, pseudo)

    def teacher_pseudo_labels(self, weak_u: torch.Tensor, samples_u, plan: ViewPlan) -> Tuple[dict, dict]:
        """The teacher on the weak views of the union U, and sigma_t of each task with a non-empty B^u_t.

        Returns:
            tuple: ``outs_t`` (task -> raw teacher outputs on U) and ``pseudo_weak`` (task -> pseudo-labels of U in
            weak-view pixels); both empty when U is.
        """
        if not plan.union:
            return {}, {}
        with section(self, 'teacher_forward'):
            feats_t = self.teacher.extract_feat(weak_u)
            outs_t = {t: task(feats_t) for t, task in self.teacher.tasks.items() if plan.unsup_idx[t]}
        with section(self, 'pseudo_label_warp'):
            return outs_t, {t: self.teacher.tasks[t].pseudo_label(o, samples_u) for t, o in outs_t.items()}

    def strong_views(self, weak_s: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """StrongAugment of the weak views ``weak_s`` (normalised): the strong views (normalised, same dtype) and
        the (len, 3, 3) weak-to-strong matrices A o alpha^-1; ``weak_s`` (empty) and None without a view."""
        if not len(weak_s):
            return weak_s, None
        with section(self, 'strong_aug'):
            strong, matrices = self.strong_aug(self.to_unit_range(weak_s))
            return self.normalise(strong).to(weak_s.dtype), matrices

    # ------------------------------------------------- what the student is taught (hooks, never a loss)
    #: set by :class:`~mtssl_mm.engine.PseudoLabelQualityHook`: :meth:`loss` then stores
    #: :attr:`pseudo_quality_counts` (task -> the task's ``quality_counts``) every call
    measure_pseudo_quality: bool = False
    pseudo_quality_counts: Optional[Dict[str, Dict[str, torch.Tensor]]] = None
    #: set by :class:`~mtssl_mm.engine.PseudoLabelVisHook` for one call: :meth:`loss` then keeps the views and
    #: pseudo-labels of U as :attr:`pseudo_batch` (None when U is empty), which the hook draws
    keep_pseudo_batch: bool = False
    pseudo_batch: Optional[PseudoBatch] = None

    def _quality_counts(self, data_samples, plan: ViewPlan, outs_t, pseudo, matrices, out_size) -> dict:
        """Every task's ``quality_counts`` over the samples of B^u_t with withheld labels for t (maybe none).

        Withheld labels are read here and nowhere else in the model; nothing computed here reaches a loss.
        """
        counts = {}
        for name, task in self.teacher.tasks.items():
            mask = task.withheld_mask(data_samples)
            members = [i for i in plan.unsup_idx[name] if mask[i]]
            outs = labels = mats = None
            if members:
                pos = plan.union_positions(members)
                index = torch.as_tensor(pos, dtype=torch.long, device=matrices.device)
                outs = tree_map(lambda t: t.index_select(0, index.to(t.device)), outs_t[name])
                labels = task.take(pseudo[name], pos)
                mats = matrices.index_select(0, index)
            counts[name] = task.quality_counts(outs, labels, [data_samples[i] for i in members], mats, out_size)
        return counts

    def student_losses(self, inputs, data_samples, plan: ViewPlan, pseudo) -> dict:
        """One student pass on ``cat(weak, strong)`` views; every task's L_s,t and L_u,t with Eq. 5 weights.

        Args:
            inputs: (len(plan.weak_idx) + len(plan.strong_idx), 3, H, W) weak views, then strong views.
            data_samples: the data samples of the whole batch.
            plan: the batch's :class:`ViewPlan`.
            pseudo: task -> warped pseudo-labels of the samples of ``plan.union``, in its order.
        """
        n_weak = len(plan.weak_idx)
        feats = self.student.extract_feat(inputs)
        ramp = self.rampup()
        terms, lams = {}, {}
        for name, task in self.student.tasks.items():
            outs = task(feats)
            weak_outs = tree_map(lambda t: t[:n_weak], outs)
            if n_weak:
                terms[f'{name}.sup'] = task.masked_loss(weak_outs, [data_samples[i] for i in plan.weak_idx])
            else:
                terms[f'{name}.sup'] = task.subset_loss(outs, [], None)
                terms[f'{name}.sup'].sums['num_labeled'] = inputs.new_tensor(0.)
            strong_outs = tree_map(lambda t: t[n_weak:], outs)
            members = plan.unsup_idx[name]
            if members:
                labels = task.take(pseudo[name], plan.union_positions(members))
                samples = [data_samples[i] for i in members]
                terms[f'{name}.unsup'] = task.subset_loss(strong_outs, plan.strong_rows(members),
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
    def predictor(self) -> MultiTaskModel:
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
        """Load a semi-supervised checkpoint, or a supervised :class:`MultiTaskModel` one into both student and
        teacher; keys that do not fit raise :class:`CheckpointKeysError`."""
        found = own_keys(state_dict, prefix)
        if found and not is_semi_supervised(found) and not any(k.startswith('strong_aug.') for k in found):
            check_keys(
                type(self).__name__,
                found,
                expected_keys(self.student),
                prefix,
                local_metadata,
                what=' (a MultiTaskModel checkpoint, for student and teacher)')
            for rest in found:
                value = state_dict.pop(prefix + rest)
                state_dict[f'{prefix}student.{rest}'] = value
                state_dict[f'{prefix}teacher.{rest}'] = value
        else:
            check_keys(type(self).__name__, found, expected_keys(self), prefix, local_metadata)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
