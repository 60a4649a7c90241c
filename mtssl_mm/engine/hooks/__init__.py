from .ema_teacher_hook import EMATeacherHook
from .pseudo_label_quality_hook import PseudoLabelQualityHook
from .pseudo_label_vis_hook import PseudoLabelVisHook
from .rng_state_hook import RNGStateHook

__all__ = ['EMATeacherHook', 'PseudoLabelQualityHook', 'PseudoLabelVisHook', 'RNGStateHook']
