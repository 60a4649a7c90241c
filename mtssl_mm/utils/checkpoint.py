"""Make mmengine's checkpoint loading work on torch >= 2.6.

torch 2.6 switched ``torch.load`` to ``weights_only=True`` by default. mmengine 0.10.7 calls ``torch.load``
without the argument, so every Runner checkpoint (it pickles numpy scalars and the message hub's
``HistoryBuffer``) fails to load with ``UnpicklingError`` -- both ``--resume`` and ``load_from``.

The fix (on mmengine's main branch, in no release) is to load local checkpoints with ``weights_only=False``.
We re-register mmengine's loader for local paths with that one argument changed; every other scheme
(``torchvision://``, ``http(s)://``) is untouched. Checkpoints are trusted files the user points to, exactly
as in mmengine < 0.10.7 with torch < 2.6.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_from_local(filename, map_location=None):
    """Load a local checkpoint file with full unpickling (``weights_only=False``).

    Args:
        filename (str): Path to the checkpoint file.
        map_location (str | None): As in :func:`torch.load`.

    Returns:
        dict | OrderedDict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename} does not exist')
    return torch.load(filename, map_location=map_location, weights_only=False)


def patch_checkpoint_loader():
    """Register :func:`load_from_local` for paths without a scheme (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
