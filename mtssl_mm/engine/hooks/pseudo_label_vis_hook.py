"""Pictures of what the student is taught: weak view + pseudo-labels beside strong view + warped pseudo-labels."""
from typing import Dict, Optional

import cv2
import numpy as np
from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ...tasks.base import implements, lacks_hook_message
from .semi_model import semi_model

HEADER = 16  # pixels of the title band above each view
GAP = 4  # pixels between the two views
MIN_SIDE = 256  # smaller views are enlarged by an integer factor (nearest) so that class names stay readable


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    """``image`` (H, W, 3) uint8 RGB under a black band with ``title`` in white."""
    band = np.zeros((HEADER, image.shape[1], 3), np.uint8)
    cv2.putText(band, title, (2, HEADER - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def draw_labels(visualizer,
                image: np.ndarray,
                labels: Dict[str, object],
                tasks: Dict[str, object],
                scale: int = 1,
                warned: Optional[set] = None) -> np.ndarray:
    """Draw one view's labels: each task's ``draw_labels`` in the order of its ``draw_layer`` (maps, then boxes,
    then captions); a task without it is left out of the picture with one warning.

    Args:
        visualizer: a :class:`~mtssl_mm.visualization.MultiTaskLocalVisualizer` with ``dataset_meta`` set.
        image: (H, W, 3) uint8 RGB.
        labels: task name -> that task's labels of this view (pixels of ``image``).
        tasks: task name -> the task module (:class:`~mtssl_mm.tasks.BaseTask`).
        scale: integer enlargement of the picture (image and labels alike).
        warned: names of tasks already warned about (updated).

    Returns:
        (scale H, scale W, 3) uint8 RGB.
    """
    image = np.ascontiguousarray(image.repeat(scale, axis=0).repeat(scale, axis=1))
    warned = set() if warned is None else warned
    for name in sorted(labels, key=lambda n: tasks[n].draw_layer):
        task = tasks[name]
        if implements(task, 'draw_labels'):
            image = task.draw_labels(visualizer, image, labels[name], scale)
        elif name not in warned:
            warned.add(name)
            print_log(lacks_hook_message(task, 'draw_labels', 'its pseudo-labels are not drawn'), 'current', level=30)
    return image


@HOOKS.register_module()
class PseudoLabelVisHook(Hook):
    """Every ``interval`` iterations, draw what the student is taught for the first ``num_samples`` samples.

    Each picture is one sample of the batch that gets pseudo-labels, side by side: the weak view with the
    teacher's pseudo-labels (sigma_t: boxes above ``pseudo_score_thr`` with class and score, the seg map as an
    overlay), and the strong view with the pseudo-labels warped into it (``A o alpha^-1``), for the tasks the
    sample is taught by the teacher (B^u_t). Flipped boxes, masks a few pixels off and Cutout areas show here
    first. Pictures go through ``runner.visualizer.add_image(f'pseudo_labels_{i}', image, step)`` to the vis
    backends: PNGs ``vis_data/vis_image/pseudo_labels_{i}_{step}.png`` (``LocalVisBackend``) and TensorBoard
    images. Only the main process records and draws.

    Args:
        interval (int): Draw every ``interval`` training iterations. Defaults to 500.
        num_samples (int): Samples drawn each time (fewer when fewer samples get pseudo-labels). Defaults to 2.
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 500, num_samples: int = 2) -> None:
        if int(interval) < 1 or int(num_samples) < 1:
            raise ValueError(f'PseudoLabelVisHook: interval and num_samples must be >= 1, got {interval} and '
                             f'{num_samples}')
        self.interval = int(interval)
        self.num_samples = int(num_samples)
        self._warned = set()

    def before_train(self, runner) -> None:
        from ...visualization import MultiTaskLocalVisualizer
        semi_model(runner, type(self).__name__)
        if not isinstance(runner.visualizer, MultiTaskLocalVisualizer):
            raise TypeError(f'PseudoLabelVisHook needs visualizer=dict(type="MultiTaskLocalVisualizer") (seg maps '
                            f'with the seg classes), got {type(runner.visualizer).__name__}')
        if not runner.visualizer.dataset_meta:
            runner.visualizer.dataset_meta = runner.train_dataloader.dataset.metainfo

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if is_main_process() and self.every_n_train_iters(runner, self.interval):
            semi_model(runner, type(self).__name__).keep_pseudo_batch = True

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        model = semi_model(runner, type(self).__name__)
        batch = model.pseudo_batch
        model.keep_pseudo_batch, model.pseudo_batch = False, None
        if batch is None:
            return
        step = runner.iter + 1
        for i, view in enumerate(self.views(model, batch, self.num_samples)):
            image = self.draw(runner.visualizer, view, model.student.tasks, self._warned)
            runner.visualizer.add_image(f'pseudo_labels_{i}', image, step=step)

    @staticmethod
    def views(model, batch, num: int) -> list:
        """The first ``num`` samples of a :class:`~mtssl_mm.models.multitask_semi.PseudoBatch`: ``weak`` and
        ``strong`` (H, W, 3) uint8 RGB, and per task the sample is taught its pseudo-labels on the weak view
        (``pseudo``) and warped into the strong one (``warped``), on the CPU, each in its task's format."""

        def to_uint8(img):  # (3, H, W) normalised RGB -> (H, W, 3) uint8
            unit = model.to_unit_range(img[None].float())[0]
            return (unit * 255).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()

        tasks = model.student.tasks
        views = []
        for p, taught in enumerate(batch.taught[:num]):
            view = dict(img_path=batch.img_paths[p], weak=to_uint8(batch.weak[p]), strong=to_uint8(batch.strong[p]))
            for key, labels in (('pseudo', batch.pseudo_weak), ('warped', batch.pseudo)):
                view[key] = {t: tasks[t].take(labels[t], [p])[0].cpu() for t in taught}
            views.append(view)
        return views

    @staticmethod
    def draw(visualizer, view: dict, tasks: Dict[str, object], warned: Optional[set] = None) -> np.ndarray:
        """One view of :meth:`views` -> (s H + 16, 2 s W + 4, 3) uint8 RGB,
        ``s`` the smallest integer that makes the shorter side at least 256 px (1 for larger views); ``tasks``:
        name -> task module, which draws its labels."""
        scale = max(1, -(-MIN_SIDE // min(view['weak'].shape[:2])))
        weak = _titled(
            draw_labels(visualizer, view['weak'], view['pseudo'], tasks, scale, warned), 'weak + pseudo-labels')
        strong = _titled(
            draw_labels(visualizer, view['strong'], view['warped'], tasks, scale, warned), 'strong + warped')
        gap = np.full((weak.shape[0], GAP, 3), 255, np.uint8)
        return np.concatenate([weak, gap, strong], axis=1)
