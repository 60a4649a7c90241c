"""The model that predicts: one seam for every tool that runs a trained model.

A supervised config's model predicts itself. A semi-supervised config (``MultiTaskSemiSupervised``) wraps the
multi-task model twice, as student and EMA teacher, built from ``cfg.model.detector``, and its checkpoints hold
``student.*`` and ``teacher.*`` keys; it predicts with the teacher (``semi_test_cfg.predict_on``). Tools that test,
export, benchmark or run inference ask this module instead of knowing that, as mmdet's ``SemiBaseDetector.predict``
hides its teacher/student choice.
"""
from collections import OrderedDict
from typing import Sequence, Tuple

#: the sub-models of a semi-supervised model, the prefixes of its state dict keys
BRANCHES = ('student', 'teacher')
BRANCH_PREFIXES = tuple(f'{b}.' for b in BRANCHES)


def predictor_config(cfg):
    """The config node of the multi-task model that predicts: ``cfg.model`` or, for a semi-supervised wrapper,
    ``cfg.model.detector`` (what both its student and its teacher are built from).

    The node itself, not a copy: setting ``predict_tasks`` on it changes what the built model predicts.
    """
    model = cfg.model
    return model.detector if 'detector' in model else model


def predictor_of(model):
    """The module that predicts: ``model.predictor`` of a semi-supervised model (its teacher by default), else the
    model itself."""
    return model.predictor if hasattr(model, 'predictor') else model


def set_predict_tasks(model, tasks: Sequence[str]) -> None:
    """Predict only ``tasks`` (as ``tools/test.py --tasks`` does on the config): on a built model, or on both
    branches of a semi-supervised one.

    Raises:
        ValueError: A task the model does not have (the known tasks are named), or no task.
    """
    models = [getattr(model, b) for b in BRANCHES] if hasattr(model, 'predictor') else [model]
    known = list(models[0].tasks)
    tasks = list(dict.fromkeys(tasks))
    unknown = [t for t in tasks if t not in known]
    if unknown or not tasks:
        raise ValueError(f'tasks: unknown task(s) {unknown or tasks}; the model ({type(model).__name__}) has the '
                         f'tasks {known}')
    for m in models:
        m.predict_tasks = tuple(tasks)


def is_semi_supervised(keys) -> bool:
    """Whether state dict keys (without any wrapper prefix) are a semi-supervised model's (``student.*``,
    ``teacher.*``)."""
    return any(k.startswith(BRANCH_PREFIXES) for k in keys)


def branch_state_dict(state_dict, branch: str, source: str) -> OrderedDict:
    """The ``{branch}.*`` entries of a semi-supervised state dict without the prefix (BN versions kept): a state
    dict of the plain multi-task model.

    Args:
        state_dict (dict): The ``state_dict`` of a ``MultiTaskSemiSupervised`` checkpoint.
        branch (str): ``'teacher'`` (what validation used) or ``'student'``.
        source (str): The file, for messages.

    Raises:
        ValueError: ``branch`` is unknown, the state dict is not a semi-supervised one, has no ``{branch}.*``
            keys, or holds keys outside ``student.*``/``teacher.*``.
    """
    if branch not in BRANCHES:
        raise ValueError(f'branch must be one of {BRANCHES}, got {branch!r}')
    if not is_semi_supervised(state_dict):
        raise ValueError(f'{source}: not a semi-supervised checkpoint (its state_dict has no student.*/teacher.* '
                         f'keys, e.g. {list(state_dict)[:3]}); a plain multi-task checkpoint loads as it is')
    prefix = f'{branch}.'
    out = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))
    if not out:
        raise ValueError(f'{source}: the checkpoint has no {prefix}* keys to export')
    other = [k for k in state_dict if not k.startswith(BRANCH_PREFIXES)]
    if other:
        raise ValueError(f'{source}: keys outside student.*/teacher.* ({other[:5]}): not a checkpoint of '
                         'MultiTaskSemiSupervised as this package knows it')
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:  # module versions (BN), re-rooted at the branch
        out._metadata = OrderedDict((k[len(prefix):] if k != branch else '', v) for k, v in metadata.items()
                                    if k == branch or k.startswith(prefix))
    return out


def predictor_state_dict(state_dict, source: str, branch: str = 'teacher') -> Tuple[OrderedDict, bool]:
    """The state dict of the model that predicts, from a supervised or a semi-supervised checkpoint.

    Returns:
        tuple: the plain multi-task state dict (a DDP ``module.`` prefix removed; for a semi-supervised checkpoint
        its ``branch``), and whether the checkpoint was semi-supervised.
    """
    plain = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v) for k, v in state_dict.items())
    if hasattr(state_dict, '_metadata'):
        plain._metadata = state_dict._metadata
    if is_semi_supervised(plain):
        return branch_state_dict(plain, branch, source), True
    return plain, False
