"""The semi-supervised wrapper behind a Runner's model, for hooks that need it."""
from mmengine.model import is_model_wrapper


def semi_model(runner, hook: str):
    """``runner.model`` (unwrapped from DDP) if it is a :class:`~mtssl_mm.models.MultiTaskSemiSupervised`.

    Raises:
        TypeError: naming ``hook`` and the model's type, for any other model.
    """
    from ...models import MultiTaskSemiSupervised
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if not isinstance(model, MultiTaskSemiSupervised):
        raise TypeError(f'{hook} needs a MultiTaskSemiSupervised model (the teacher makes the pseudo-labels), got '
                        f'{type(model).__name__}; remove it from custom_hooks of supervised configs')
    return model
