"""The attribute task's model side: one classifier per image attribute (BDD100K's weather, scene, time of day)."""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS

from ..base import BaseTask
from ..task_loss import TaskLoss
from .data import NO_LABEL, AttributesData


@MODELS.register_module()
class AttributesTask(BaseTask):
    """One classifier per image attribute on the shared backbone.

    Data flow::

        backbone feats ─► feats[in_index] (B, C, h, w) ─► global average pool (B, C)
            ─► one linear layer per attribute a ─► logits: dict a -> (B, K_a)

    Targets are each sample's ``gt_attributes`` (A,) int64, one class index per attribute in the order of
    ``attributes``, ``-1`` where the attribute is ``undefined``. Loss: cross-entropy per attribute (``loss_{a}``),
    summed over the samples whose attribute is defined, normalised by the number of labeled samples in the global
    batch (an undefined attribute adds 0, as a pseudo-label below the threshold does in the unsupervised loss).
    Predictions go to ``pred_attributes`` (A,) int64 (argmax per attribute) and ``pred_attribute_scores``
    (A,) float (its softmax probability).

    Semi-supervised learning (FixMatch, Sohn et al. 2020): sigma_t keeps, per attribute, the class whose softmax
    probability is >= ``pseudo_score_thr`` (0.95) and no target otherwise; the task is invariant, so the warp is
    the identity; the unsupervised loss is the cross-entropy on the strong views summed over the confident
    attributes, normalised by the number of samples of B^u_t in the global batch (FixMatch's mean over the
    unlabeled batch: a sample below the threshold counts, with 0).

    Args:
        attributes (dict): Attribute name -> number of classes, in the order of ``gt_attributes`` (the dataset's
            ``metainfo['attr_classes']``), e.g. ``dict(weather=6, scene=6, timeofday=3)``.
        in_channels (int): Channels of ``feats[in_index]`` (2048 for ResNet-50's C5).
        in_index (int): The backbone level pooled. Defaults to -1 (the last).
        dropout (float): Dropout before the linear layers. Defaults to 0.
        pseudo_score_thr (float): sigma_t's confidence threshold. Defaults to 0.95 (FixMatch).
        **kwargs: See :class:`BaseTask`.
    """

    data_type = AttributesData
    draw_layer = 2  # a caption over maps and boxes

    def __init__(self,
                 attributes: Dict[str, int],
                 in_channels: int,
                 in_index: int = -1,
                 dropout: float = 0.0,
                 pseudo_score_thr: float = 0.95,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not attributes:
            raise ValueError('AttributesTask: `attributes` is empty')
        self.attributes = {str(a): int(k) for a, k in attributes.items()}
        self.in_index = int(in_index)
        self.pseudo_score_thr = float(pseudo_score_thr)
        self.dropout = nn.Dropout(dropout)
        self.classifiers = nn.ModuleDict({a: nn.Linear(in_channels, k) for a, k in self.attributes.items()})

    @property
    def loss_keys(self):
        return tuple(f'loss_{a}' for a in self.attributes)

    def forward(self, feats: Sequence[torch.Tensor]) -> Dict[str, torch.Tensor]:
        pooled = self.dropout(feats[self.in_index].mean(dim=(2, 3)))
        return {a: fc(pooled) for a, fc in self.classifiers.items()}

    def _ce_sums(self, outs: Dict[str, torch.Tensor], targets: torch.Tensor, normaliser: float) -> TaskLoss:
        """Per attribute, the cross-entropy summed over the samples whose target is not ``-1``.

        Args:
            outs: attribute -> (B, K_a) logits.
            targets: (B, A) int64 targets, ``-1`` where there is none.
            normaliser: the number of samples behind the sums.
        """
        targets = targets.to(next(iter(outs.values())).device)
        sums = {
            f'loss_{a}': F.cross_entropy(outs[a].float(), targets[:, j], ignore_index=NO_LABEL, reduction='sum')
            for j, a in enumerate(self.attributes)
        }
        return TaskLoss(sums, targets.new_tensor(float(normaliser), dtype=torch.float32))

    def _targets(self, data_samples, field: str = 'gt_attributes') -> torch.Tensor:
        rows = []
        for ds in data_samples:
            if field not in ds:
                raise KeyError(f'AttributesTask: sample {ds.metainfo.get("img_path")} has no {field}; load it with '
                               'LoadMultiTaskAnnotations (task "attr" in the dataset\'s tasks)')
            value = torch.as_tensor(getattr(ds, field), dtype=torch.long).reshape(-1)
            if value.numel() != len(self.attributes):
                raise ValueError(f'AttributesTask: sample {ds.metainfo.get("img_path")}: {field} has {value.numel()} '
                                 f'values, the task {len(self.attributes)} attributes {list(self.attributes)}')
            rows.append(value)
        return torch.stack(rows)

    def loss(self, outs, data_samples) -> TaskLoss:
        """Cross-entropy sums per attribute against ``gt_attributes``; normaliser: the labeled samples."""
        return self._ce_sums(outs, self._targets(data_samples), len(data_samples))

    def predict(self, outs, data_samples, rescale: bool = True) -> None:
        """``pred_attributes`` (A,) int64 and ``pred_attribute_scores`` (A,); with :attr:`keep_logits` also
        ``pred_attribute_probs``, attribute -> (K_a,) softmax probabilities."""
        probs = {a: outs[a].float().softmax(dim=1) for a in self.attributes}
        for i, ds in enumerate(data_samples):
            self._set_prediction(ds, {a: p[i] for a, p in probs.items()}, self.keep_logits)

    @staticmethod
    def _set_prediction(ds, probs: Dict[str, torch.Tensor], keep: bool) -> None:
        scores, labels = zip(*(p.max(dim=0) for p in probs.values()))
        ds.pred_attributes = torch.stack(labels)
        ds.pred_attribute_scores = torch.stack(scores)
        if keep:
            ds.pred_attribute_probs = probs
        elif 'pred_attribute_probs' in ds:
            del ds.pred_attribute_probs

    # ------------------------------------------------------------------------------------ after training
    def merge_views(self, views, base, tta_cfg, keep_logits: bool = False) -> None:
        """Per attribute the mean of the views' softmax probabilities, then argmax (an image's weather does not
        flip with it: no view is flipped back).

        Raises:
            KeyError: A view without ``pred_attribute_probs`` (predicted without :attr:`keep_logits`).
        """
        for v in views:
            if 'pred_attribute_probs' not in v:
                raise KeyError(f'MultiTaskTTAModel: view of {v.metainfo.get("img_path")} has no '
                               'pred_attribute_probs; the attribute task must keep them (AttributesTask.keep_logits)')
        probs = {a: sum(v.pred_attribute_probs[a] for v in views) / len(views) for a in self.attributes}
        self._set_prediction(base, probs, keep_logits)

    def export_outputs(self, outs) -> Dict[str, torch.Tensor]:
        """``{a}_logits`` (B, K_a) per attribute, in the order of ``attributes`` (softmax outside)."""
        return {f'{a}_logits': outs[a] for a in self.attributes}

    def export_metadata(self, outs, dataset_meta) -> dict:
        meta = dict(attributes=dict(self.attributes))
        if dataset_meta.get('attr_classes'):
            meta['classes'] = {a: list(v) for a, v in dataset_meta['attr_classes'].items()}
        return meta

    def draw_labels(self, visualizer, image, labels: torch.Tensor, scale: int = 1) -> np.ndarray:
        """A caption at the top left: ``attribute: class`` per attribute (``-`` where there is no label)."""
        import cv2
        names = (visualizer.dataset_meta or {}).get('attr_classes') or {}
        values = labels.tolist()
        parts = []
        for j, a in enumerate(self.attributes):
            v = int(values[j])
            classes = list(names.get(a, ()))
            parts.append(f'{a}: {"-" if v == NO_LABEL else classes[v] if v < len(classes) else v}')
        image = np.ascontiguousarray(image)
        for r, text in enumerate(parts):
            y = 14 * (r + 1)
            cv2.putText(image, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, text, (3, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        return image

    # ------------------------------------------------------------------------------------ semi-supervised
    def pseudo_label(self, outs, data_samples) -> torch.Tensor:
        """sigma_t: (B, A) int64, per attribute the argmax class where its probability >= ``pseudo_score_thr``,
        ``-1`` elsewhere."""
        labels = []
        for a in self.attributes:
            prob, label = outs[a].float().softmax(dim=1).max(dim=1)
            labels.append(label.masked_fill(prob < self.pseudo_score_thr, NO_LABEL))
        return torch.stack(labels, dim=1)

    def warp_pseudo_labels(self, labels: torch.Tensor, matrices: torch.Tensor, out_size) -> torch.Tensor:
        """The identity: an image's weather does not move with its pixels."""
        return labels

    def unsup_loss(self, outs, data_samples, labels: torch.Tensor) -> TaskLoss:
        """Cross-entropy sums over the confident attributes; normaliser: all samples given (B^u_t on this rank)."""
        return self._ce_sums(outs, labels, len(data_samples))

    def pseudo_stats(self, labels: Optional[torch.Tensor]) -> Dict[str, Tuple[float, float]]:
        """Logged beside the losses: the share of (sample, attribute) pairs with a pseudo-label (pairs with one,
        pairs; None: no sample)."""
        if labels is None:
            return dict(pseudo_attr_ratio=(0.0, 0.0))
        return dict(pseudo_attr_ratio=(float((labels != NO_LABEL).sum()), float(labels.numel())))

    # ------------------------------------------------------------ pseudo-label quality (never a loss)
    def withheld_labels(self, data_samples):
        """Withheld attributes (``withheld_attributes``): (B, A) int64; None when no sample has them."""
        has = [('withheld_attributes' in ds) for ds in data_samples]
        if not any(has):
            return None
        if not all(has):
            missing = [ds.metainfo.get('img_path') for ds, h in zip(data_samples, has) if not h]
            raise KeyError(f'AttributesTask.withheld_labels: samples {missing} have no withheld_attributes')
        return self._targets(data_samples, 'withheld_attributes')

    def quality_counts(self, outs, pseudo, data_samples, matrices, out_size) -> Dict[str, torch.Tensor]:
        """Per attribute (A,): ``defined`` (withheld value defined), ``confident`` (defined and pseudo-labeled),
        ``correct`` (confident and equal); ``num_images``."""
        n = len(self.attributes)
        device = next(self.parameters()).device
        if not data_samples:
            zeros = torch.zeros(n, dtype=torch.long, device=device)
            return dict(num_images=zeros.new_zeros(()), defined=zeros, confident=zeros.clone(), correct=zeros.clone())
        withheld = self.withheld_labels(data_samples).to(device)
        pseudo = pseudo.to(device)
        defined = withheld != NO_LABEL
        confident = defined & (pseudo != NO_LABEL)
        return dict(
            num_images=torch.tensor(len(data_samples), device=device),
            defined=defined.sum(0),
            confident=confident.sum(0),
            correct=(confident & (pseudo == withheld)).sum(0))

    def quality_metrics(self, counts) -> Dict[str, float]:
        """Per attribute: ``{a}_precision`` (correct among the confident), ``{a}_coverage`` (confident among the
        defined); a metric whose denominator is 0 is left out."""
        out = {}
        for j, a in enumerate(self.attributes):
            confident, defined = float(counts['confident'][j]), float(counts['defined'][j])
            if confident:
                out[f'{a}_precision'] = float(counts['correct'][j]) / confident
            if defined:
                out[f'{a}_coverage'] = confident / defined
        return out
