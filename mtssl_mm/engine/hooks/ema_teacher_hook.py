"""The EMA teacher of the semi-supervised wrapper, updated with fused multi-tensor ops."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS


@HOOKS.register_module()
class EMATeacherHook(Hook):
    """``teacher = decay * teacher + (1 - decay) * student`` after every ``interval`` training iterations.

    Parameters *and* floating-point buffers (BN running mean/var) follow the student by the same average;
    integer buffers (BN ``num_batches_tracked``) are copied. mmdet's ``MeanTeacherHook`` skips buffers by
    default, which leaves the teacher's BN statistics at their initial values while its weights move -- the
    teacher, evaluated in eval mode, would normalise with statistics that no longer match its weights.

    The update is one ``torch._foreach_lerp_`` over all parameter tensors (and one over the float buffers), not a
    Python loop over parameters. At the first iteration of a fresh run the teacher is set equal to the student.

    Args:
        decay (float): EMA decay (Table 10: 0.99).
        interval (int): Update every ``interval`` iterations.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, decay: float = 0.99, interval: int = 1) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f'EMATeacherHook: decay must be in (0, 1), got {decay}')
        self.decay = float(decay)
        self.interval = int(interval)
        self._pairs = None

    @staticmethod
    def _model(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not (hasattr(model, 'teacher') and hasattr(model, 'student')):
            raise AttributeError('EMATeacherHook needs a model with `teacher` and `student` (MultiTaskSemiSupervised)')
        return model

    def _collect(self, model):
        t_params, s_params = dict(model.teacher.named_parameters()), dict(model.student.named_parameters())
        t_bufs, s_bufs = dict(model.teacher.named_buffers()), dict(model.student.named_buffers())
        if t_params.keys() != s_params.keys() or t_bufs.keys() != s_bufs.keys():
            raise RuntimeError('EMATeacherHook: teacher and student have different parameters/buffers')
        float_bufs = [k for k in t_bufs if t_bufs[k].is_floating_point()]
        other_bufs = [k for k in t_bufs if not t_bufs[k].is_floating_point()]
        self._pairs = dict(
            params=([t_params[k].data for k in t_params], [s_params[k].data for k in t_params]),
            float_bufs=([t_bufs[k] for k in float_bufs], [s_bufs[k] for k in float_bufs]),
            other_bufs=([t_bufs[k] for k in other_bufs], [s_bufs[k] for k in other_bufs]))

    @torch.no_grad()
    def update(self, model, weight: float) -> None:
        """Move the teacher by ``weight`` towards the student (``weight = 1 - decay``; 1 copies)."""
        if self._pairs is None:
            self._collect(model)
        for key in ('params', 'float_bufs'):
            teacher, student = self._pairs[key]
            if teacher:
                torch._foreach_lerp_(teacher, student, weight)
        for t, s in zip(*self._pairs['other_bufs']):
            t.copy_(s)

    def before_train(self, runner) -> None:
        model = self._model(runner)
        self._pairs = None
        if runner.iter == 0:
            self.update(model, 1.0)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if (runner.iter + 1) % self.interval == 0:
            self.update(self._model(runner), 1.0 - self.decay)
