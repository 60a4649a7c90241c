"""mtssl_mm: multi-task (detection + segmentation) learning on partially labeled data, for OpenMMLab.

Importing the package registers every component in mmdet's registries (configs load it with
``custom_imports = dict(imports=['mtssl_mm'])``) and makes mmengine load every checkpoint with
``weights_only=True`` and the allowlist of globals a Runner checkpoint needs (``utils/checkpoint.py``): Runner
checkpoints load on torch >= 2.6, and a file whose unpickling could run code is refused.
"""
from .utils import patch_checkpoint_loader
from .version import __version__

patch_checkpoint_loader()

from . import augmentation, datasets, engine, evaluation, models, tasks, visualization  # noqa: E402,F401

__all__ = ['__version__']
