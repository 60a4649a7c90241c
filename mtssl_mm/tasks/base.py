"""What every task of the multi-task model provides."""
from abc import ABCMeta, abstractmethod
from contextlib import nullcontext
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np
import torch
from mmengine.model import BaseModule
from torch.utils._pytree import tree_flatten, tree_map

from .task_data import TaskData, task_data
from .task_loss import TaskLoss

#: the optional hooks of the task protocol after training, and who calls them
AFTER_TRAINING_HOOKS = {
    'merge_views': 'MultiTaskTTAModel (flip test-time augmentation)',
    'export_outputs': 'the ONNX export',
    'draw_labels': 'PseudoLabelVisHook (pictures of the pseudo-labels)',
}


def implements(task: 'BaseTask', hook: str) -> bool:
    """Whether ``task`` overrides the optional protocol method ``hook`` of :class:`BaseTask`."""
    return getattr(type(task), hook) is not getattr(BaseTask, hook)


def lacks_hook_message(task: 'BaseTask', hook: str, consequence: str) -> str:
    """The one message a caller gives when it skips a task without ``hook``."""
    return (f'task {task.name!r} ({type(task).__name__}) has no {hook}(), which {AFTER_TRAINING_HOOKS[hook]} '
            f'needs: {consequence}')


def float32_losses(device: torch.device):
    """A context with autocast off on ``device``'s type (a no-op where autocast does not exist)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()


class BaseTask(BaseModule, metaclass=ABCMeta):
    """One task of :class:`MultiTaskModel`: its head, its supervised loss and its predictions.

    A task is the unit of extension: adding a task (classification, depth, ...) means a new subclass in
    ``mtssl_mm/tasks/`` and an entry in the model config's ``tasks`` dict -- nothing else changes.

    Subclasses implement :meth:`forward` (shared backbone features -> raw head outputs, for the whole batch),
    :meth:`loss` (raw outputs of *labeled* samples -> :class:`TaskLoss`) and :meth:`predict` (raw outputs ->
    results written into the data samples), and set :attr:`loss_keys`. For semi-supervised learning they also
    implement the pseudo-labeling operator sigma_t (:meth:`pseudo_label`), the label warp A o alpha^-1
    (:meth:`warp_pseudo_labels`) and the unsupervised loss L_u,t (:meth:`unsup_loss`) of Eq. 4.

    Losses are returned as sums over valid elements with their count (:class:`TaskLoss`), never as means: the
    model divides by the count over the global batch (:func:`~mtssl_mm.tasks.task_loss.normalise_globally`),
    so that a loss is the same on 1 GPU x 16 images as on 8 x 2.

    Args:
        name (str): The task's key: in ``labeled_tasks`` metainfo, loss names (``f'{name}.loss_x'``) and the
            evaluator. Set by the model from its ``tasks`` dict.
        loss_weight (float): The task weight gamma_t of Eq. 5. Defaults to 1.0 (Table 10).
        init_cfg (dict, optional): Initialisation config.
    """

    #: names of the loss entries :meth:`loss` returns (used to emit zeros when no sample is labeled)
    loss_keys: Sequence[str] = ()
    #: the data side this model side pairs with (:class:`~mtssl_mm.tasks.TaskData`): the entry of ``TASK_DATA``
    #: under the task's name must be one, checked when the task is built
    data_type: ClassVar[Optional[Type[TaskData]]] = None
    #: set by :class:`~mtssl_mm.models.MultiTaskTTAModel`: :meth:`predict` also keeps what :meth:`merge_views`
    #: needs (e.g. the logits)
    keep_logits: bool = False

    def __init__(self, name: str, loss_weight: float = 1.0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.name = name
        self.loss_weight = float(loss_weight)
        self.check_pair()

    def check_pair(self) -> None:
        """The data side registered under the task's name must be :attr:`data_type`'s (model and data side are a
        pair: a ``SegmentationTask`` named ``'det'`` would read detection labels as maps).

        Raises:
            KeyError: No data side is registered under the name.
            TypeError: It is another task's data side, or the class declares none.
        """
        data = task_data(self.name, where=f'{type(self).__name__} named {self.name!r}')
        if self.data_type is None:
            raise TypeError(f'{type(self).__name__}: a task class must name its data side (data_type = a TaskData '
                            'subclass registered with @register_task_data)')
        if not isinstance(data, self.data_type):
            raise TypeError(f'task {self.name!r}: the model side {type(self).__name__} pairs with '
                            f'{self.data_type.__name__} (task {self.data_type.name!r}), but {self.name!r} is '
                            f'registered to {type(data).__name__}; name the task {self.data_type.name!r}')

    def labeled_mask(self, data_samples: Sequence) -> List[bool]:
        """Which samples are labeled for this task, from each sample's ``labeled_tasks`` metainfo."""
        mask = []
        for ds in data_samples:
            if 'labeled_tasks' not in ds:
                raise KeyError(f'data sample {ds.metainfo.get("img_path")} has no "labeled_tasks" metainfo; '
                               'pack samples with PackMultiTaskInputs')
            mask.append(self.name in ds.labeled_tasks)
        return mask

    @staticmethod
    def check_batch_tasks(model_tasks: Sequence[str], data_samples: Sequence) -> None:
        """Training samples must come from a dataset whose tasks are the model's (its ``tasks`` metainfo).

        A model task the dataset does not serve would train on no label, and a dataset task without a head would
        drop its labels: both are errors naming the two task lists, never a silent drop. Samples without the
        ``tasks`` metainfo (built without :class:`MultiTaskDataset`) are not checked.

        Raises:
            ValueError: the dataset's tasks differ from ``model_tasks``.
        """
        for ds in data_samples:
            tasks = ds.metainfo.get('tasks')
            if tasks is not None and set(tasks) != set(model_tasks):
                raise ValueError(f'the model has the tasks {sorted(model_tasks)} but the training data set of '
                                 f'{ds.metainfo.get("img_path")} serves {sorted(tasks)}: set the same tasks in the '
                                 'model config and in train_dataloader.dataset.tasks')

    @abstractmethod
    def forward(self, feats: Sequence[torch.Tensor]) -> Any:
        """Raw head outputs for the whole batch from the backbone's multi-level features."""

    @abstractmethod
    def loss(self, outs: Any, data_samples: Sequence) -> TaskLoss:
        """Supervised loss sums over ``data_samples``, all labeled for this task; ``outs`` holds their outputs."""

    @abstractmethod
    def predict(self, outs: Any, data_samples: Sequence, rescale: bool = True) -> None:
        """Write this task's predictions into ``data_samples``."""

    # ------------------------------------------------------------- semi-supervised learning (Eq. 4)
    @abstractmethod
    def pseudo_label(self, outs: Any, data_samples: Sequence) -> Any:
        """sigma_t: teacher outputs on weak views -> pseudo-labels in the weak view's input pixels."""

    @abstractmethod
    def warp_pseudo_labels(self, labels: Any, matrices: torch.Tensor, out_size: Tuple[int, int]) -> Any:
        """A o alpha^-1: move pseudo-labels by per-sample (B, 3, 3) weak-to-strong matrices."""

    @abstractmethod
    def unsup_loss(self, outs: Any, data_samples: Sequence, labels: Any) -> TaskLoss:
        """L_u,t sums on strong-view outputs against (warped) pseudo-labels; all given samples count."""

    @staticmethod
    def pseudo_stats(labels: Any) -> Dict[str, Tuple[float, float]]:
        """Statistics of a batch of (warped) pseudo-labels, logged beside the losses as ``'{name}.{key}'``.

        Each is a ratio ``(numerator, denominator)`` of sums over this rank's samples (e.g. pseudo boxes and
        images); the log shows ``sum numerators / max(sum denominators, 1)`` over the global batch. ``labels`` is
        None when this rank has no sample of B^u_t: the same keys must come back (zeros), since every rank logs
        the same keys every iteration.
        """
        return {}

    # ------------------------------------------------ pseudo-label quality against withheld labels
    def withheld_mask(self, data_samples: Sequence) -> List[bool]:
        """Which samples carry withheld labels for this task (``withheld_tasks`` metainfo; absent: none)."""
        return [self.name in ds.metainfo.get('withheld_tasks', ()) for ds in data_samples]

    def withheld_labels(self, data_samples: Sequence) -> Any:
        """The withheld labels of ``data_samples``, in the format :meth:`pseudo_label` returns and in the weak
        view's input pixels; None when no sample has them (and by default: a task without it is not measured).
        Samples that lack them among samples that have them are an error (select with :meth:`withheld_mask`)."""
        return None

    def quality_counts(self, outs: Any, pseudo: Any, data_samples: Sequence, matrices: torch.Tensor,
                       out_size: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        """Sums that measure the pseudo-labels against the withheld labels; empty by default (not measured).

        Never used by a loss. The sums can be added over iterations and ranks; they hold ``num_images`` (the
        number of samples measured) and have the same keys and shapes whatever the samples, also for none.

        Args:
            outs: the teacher's raw outputs on the weak views of ``data_samples`` (None when there are none).
            pseudo: the pseudo-labels of ``data_samples`` warped into the strong views (what the student is taught).
            data_samples: samples of B^u_t that carry withheld labels for this task (may be empty).
            matrices: ``(len(data_samples), 3, 3)`` weak-to-strong matrices (pixel-index coordinates).
            out_size: ``(H, W)`` of the strong views.
        """
        return {}

    def quality_metrics(self, counts: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """Metrics (fractions and per-image means) from summed :meth:`quality_counts`; logged as
        ``'{name}.pl/{key}'``."""
        return {}

    # ------------------------------------------- after training: optional hooks (AFTER_TRAINING_HOOKS)
    def merge_views(self, views: Sequence, base, tta_cfg: dict, keep_logits: bool = False) -> None:
        """Merge this task's predictions of one image's test-time views into ``base`` (flip TTA).

        Args:
            views: The views' data samples (``flip``, ``flip_direction`` metainfo); predictions made with
                :attr:`keep_logits` set.
            base: The un-flipped view's data sample (one of ``views``), which receives the merged prediction.
            tta_cfg (dict): :class:`~mtssl_mm.models.MultiTaskTTAModel`'s ``tta_cfg``.
            keep_logits (bool): Keep the merged scores in ``base``; else drop what :attr:`keep_logits` added.
        """
        raise NotImplementedError

    def export_outputs(self, outs: Any) -> Dict[str, torch.Tensor]:
        """The raw outputs as graph outputs (ONNX): ``{key: (B, ...) tensor}``, in order; named ``{name}_{key}``."""
        raise NotImplementedError

    def export_metadata(self, outs: Any, dataset_meta: dict) -> Dict[str, Any]:
        """JSON-ready facts a consumer of the exported graph needs (``mtssl_mm.{name}_{key}`` metadata), from the
        raw outputs of an export-sized input."""
        return {}

    def export_arrays(self, outs: Any) -> Dict[str, np.ndarray]:
        """Arrays written beside the exported graph (``OUT_{name}_{key}.npy``), e.g. detection anchors."""
        return {}

    #: the order in which :meth:`draw_labels` of the tasks run on one picture (maps under boxes under captions)
    draw_layer: int = 0

    def draw_labels(self, visualizer, image: np.ndarray, labels: Any, scale: int = 1) -> np.ndarray:
        """Draw one sample's (pseudo-)labels of this task, in the format :meth:`pseudo_label` returns for one
        sample (pixels of ``image`` before ``scale``).

        Args:
            visualizer: A :class:`~mtssl_mm.visualization.MultiTaskLocalVisualizer` with ``dataset_meta`` set.
            image: (scale H, scale W, 3) uint8 RGB, already enlarged.
            labels: This task's labels of the sample.
            scale: The integer enlargement of ``image``.

        Returns:
            (scale H, scale W, 3) uint8 RGB.
        """
        raise NotImplementedError

    @staticmethod
    def take(labels: Any, idx: Sequence[int]) -> Any:
        """Select samples ``idx`` of a batch of pseudo-labels (a list, or a tensor with the batch first)."""
        if isinstance(labels, torch.Tensor):
            return labels[torch.as_tensor(list(idx), dtype=torch.long, device=labels.device)]
        return [labels[i] for i in idx]

    # ------------------------------------------------------------------------------------- masking
    def subset_loss(self, outs: Any, idx: Sequence[int], loss_fn: Callable[[Any], TaskLoss]) -> TaskLoss:
        """``loss_fn`` on the outputs of samples ``idx`` only; connected zeros and a 0 count if ``idx`` is empty.

        The zero stays connected to all head outputs, so that DDP sees every parameter used on every rank.
        Every loss runs in float32 with autocast off, on outputs cast to float32, whatever the autocast dtype of
        the forward pass: mmcv's CUDA ``sigmoid_focal_loss`` (mmdet's ``FocalLoss`` on CUDA tensors) has float and
        half kernels only, and sums over many elements lose precision in 16 bits.
        """
        leaves = tree_flatten(outs)[0]
        batch = leaves[0].shape[0]
        if not idx:
            zero = sum(t.float().sum() for t in leaves) * 0.0
            return TaskLoss({k: zero for k in self.loss_keys}, leaves[0].new_zeros((), dtype=torch.float32))
        if len(idx) < batch:
            index = torch.as_tensor(list(idx), dtype=torch.long, device=leaves[0].device)
            outs = tree_map(lambda t: t.index_select(0, index), outs)
        with float32_losses(leaves[0].device):
            return loss_fn(tree_map(lambda t: t.float() if t.is_floating_point() else t, outs))

    def record_losses(self, outs: Any, data_samples: Sequence) -> None:
        """The supervised loss of each sample labeled for this task, written into it for the evaluator.

        Called by :meth:`MultiTaskModel.predict` on the outputs of the prediction's own forward pass (validation
        and test, no second pass). Each labeled sample gets ``task_losses[name] = {loss_*: sum, 'count':
        normaliser}`` (floats; the sum of a per-level loss over its levels) from :meth:`loss` on that sample alone,
        so that :class:`~mtssl_mm.evaluation.MultiTaskMetric` adds sums and counts over the whole set, on every
        rank, and divides once: the training normaliser of the task (per image for detection, Eq. 3; pooled
        pixels for segmentation) over the whole validation set. A sample not labeled for the task gets nothing.
        """
        for i, ds in enumerate(data_samples):
            if self.name not in ds.metainfo.get('labeled_tasks', ()):
                continue
            result = self.subset_loss(outs, [i], lambda o, _ds=ds: self.loss(o, [_ds]))
            entry = {
                k: float(sum(v) if isinstance(v, (list, tuple)) else v)
                for k, v in result.sums.items() if 'loss' in k
            }
            entry['count'] = float(result.normaliser)
            recorded = dict(ds.get('task_losses', None) or {})
            recorded[self.name] = entry
            ds.task_losses = recorded

    def masked_loss(self, outs: Any, data_samples: Sequence) -> TaskLoss:
        """The supervised loss L_s,t of Eq. 3: computed over the samples labeled for this task only.

        Samples not labeled for the task are removed before the loss (they add neither positives nor
        negatives, and no gradient, and nothing to the normaliser). The sums run over the valid elements of the
        labeled part of the batch (pixels, anchors); the model divides them by the count of those elements
        over the global batch. With no labeled sample, every sum is a zero that is still connected to all head
        outputs (see :meth:`subset_loss`) and the count is 0.

        Returns:
            TaskLoss: the task's loss sums (unweighted) and ``num_labeled``, the size of B^l_t on this rank.
        """
        idx = [i for i, m in enumerate(self.labeled_mask(data_samples)) if m]
        result = self.subset_loss(outs, idx, lambda o: self.loss(o, [data_samples[i] for i in idx]))
        result.sums['num_labeled'] = result.normaliser.new_tensor(float(len(idx)))
        return result
