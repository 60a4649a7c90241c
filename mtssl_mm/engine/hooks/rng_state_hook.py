"""Save torch's random state in checkpoints so that ``--resume`` continues the exact same run."""
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Store torch's CPU (and CUDA) RNG state in each checkpoint and restore it on resume.

    mmengine restores model, optimizer, scheduler and loop counters on resume, and the iteration-based loop
    re-draws the already-consumed batches so that the data pipeline (numpy RNG, data-loader workers) lands
    where it was. It does not restore torch's own generator, which drives everything random *inside* the
    model step: dropout, and the on-device strong augmentation of the semi-supervised wrapper. Without it
    a resumed run diverges from an uninterrupted one. With it, training N iterations equals training k,
    saving, resuming and training N - k more (same seed; tested in ``tests/test_checkpoint.py``).

    The checkpoint key is ``meta['torch_rng_state']`` (and ``meta['cuda_rng_state']`` where CUDA is used).
    A checkpoint without the key (e.g. from another code base) resumes as before, with a warning.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        meta['torch_rng_state'] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            meta['cuda_rng_state'] = torch.cuda.get_rng_state()

    def __init__(self) -> None:
        self._loaded = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Called for ``load_from`` and ``resume`` alike; applied in ``before_train`` only when resuming.
        self._loaded = checkpoint.get('meta', {})

    def before_train(self, runner) -> None:
        meta, self._loaded = self._loaded, None
        if meta is None or runner.iter == 0:  # fresh run, or fine-tuning from ``load_from``
            return
        if 'torch_rng_state' not in meta:
            runner.logger.warning('checkpoint has no torch RNG state: the resumed run will not repeat '
                                  'the random draws of an uninterrupted one')
            return
        torch.set_rng_state(meta['torch_rng_state'])
        if 'cuda_rng_state' in meta and torch.cuda.is_available():
            torch.cuda.set_rng_state(meta['cuda_rng_state'])
