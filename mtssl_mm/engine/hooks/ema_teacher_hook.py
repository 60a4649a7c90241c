"""The EMA teacher of the semi-supervised wrapper: mmdet's ``MeanTeacherHook`` with a fused update."""
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.engine.hooks import MeanTeacherHook
from mmdet.registry import HOOKS
from torch import Tensor, nn


@HOOKS.register_module()
class EMATeacherHook(MeanTeacherHook):
    """``teacher = decay * teacher + (1 - decay) * student`` after every ``interval`` training iterations.

    mmdet's ``MeanTeacherHook(momentum=1 - decay, skip_buffer=False)`` with its update fused. What mmdet's hook
    does and this one keeps: ``before_train`` checks that the model (unwrapped) has ``teacher`` and ``student``
    and, at iteration 0 only (a fresh run, not a resumed one), sets the teacher equal to the student
    (``momentum_update(model, 1)``); ``after_train_iter`` moves it by ``momentum = 1 - decay`` when
    ``(runner.iter + 1) % interval == 0``. mmdet's ``momentum`` is the weight of the *student*; the config key
    here is ``decay``, the weight of the teacher (Table 10: 0.99), mapped to ``momentum = 1 - decay``.

    What :meth:`momentum_update` changes: one ``torch._foreach_lerp_`` over all parameter tensors and one over
    the floating-point buffers (BN running mean/var), instead of a Python loop of ``mul_``/``add_`` over the
    ``state_dict``; integer buffers (BN ``num_batches_tracked``) are copied from the student, where mmdet's
    hook leaves them at their initial values. Buffers follow the student (``skip_buffer=False``): with mmdet's
    default ``skip_buffer=True`` the teacher's BN statistics would stay at their initial values while its
    weights move, and the teacher, evaluated in eval mode, would normalise with statistics that no longer match
    its weights. The tensor lists are collected at the first update and reused; :meth:`before_train` drops them
    (the runner may have moved or wrapped the model since), then does what mmdet's does.

    Args:
        decay (float): EMA decay, the teacher's weight, in ``(0, 1)`` (Table 10: 0.99).
        interval (int): Update every ``interval`` iterations.

    Example:
        >>> from mmengine.registry import build_from_cfg
        >>> hook = build_from_cfg(dict(type='EMATeacherHook', decay=0.99), HOOKS)
        >>> isinstance(hook, MeanTeacherHook), round(hook.momentum, 6), hook.skip_buffers
        (True, 0.01, False)
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, decay: float = 0.99, interval: int = 1) -> None:
        momentum = 1.0 - float(decay)
        if not (0.0 < decay < 1.0 and 0.0 < momentum < 1.0):
            raise ValueError(f'EMATeacherHook: decay must be in (0, 1), got {decay}')
        super().__init__(momentum=momentum, interval=int(interval), skip_buffer=False)
        self.decay = float(decay)
        self._pairs: Optional[Dict[str, Tuple[List[Tensor], List[Tensor]]]] = None

    def _collect(self, model: nn.Module) -> None:
        """Pair the teacher's tensors with the student's by name: parameters, float buffers, other buffers."""
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
    def momentum_update(self, model: nn.Module, momentum: float) -> None:
        """Move the teacher by ``momentum`` towards the student: ``t = t + momentum * (s - t)``.

        Args:
            model (nn.Module): the unwrapped model, with ``teacher`` and ``student`` of the same structure.
            momentum (float): the student's weight, ``1 - decay``; 1 copies the student.
        """
        if self._pairs is None:
            self._collect(model)
        for key in ('params', 'float_bufs'):
            teacher, student = self._pairs[key]
            if teacher:
                torch._foreach_lerp_(teacher, student, momentum)
        for t, s in zip(*self._pairs['other_bufs']):
            t.copy_(s)

    #: The name this hook's update had before it built on ``MeanTeacherHook`` (``tools/benchmark.py`` uses it).
    update = momentum_update

    def before_train(self, runner) -> None:
        """Drop the collected tensor lists, then check the model and copy the student at iteration 0 (mmdet's)."""
        self._pairs = None
        super().before_train(runner)
