from .multitask_model import MultiTaskModel
from .multitask_semi import MultiTaskSemiSupervised
from .multitask_tta import MultiTaskTTAModel, build_tta_pipeline
from .predictor import (branch_state_dict, is_semi_supervised, predictor_config, predictor_of, predictor_state_dict,
                        set_predict_tasks)
from .state_dict_check import CheckpointKeysError

__all__ = [
    'CheckpointKeysError', 'MultiTaskModel', 'MultiTaskSemiSupervised', 'MultiTaskTTAModel', 'branch_state_dict',
    'build_tta_pipeline', 'is_semi_supervised', 'predictor_config', 'predictor_of', 'predictor_state_dict',
    'set_predict_tasks'
]
