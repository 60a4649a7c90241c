"""Shared test helpers: the tiny config, pointed at data the tests write."""
import os.path as osp
import uuid

from toy_data import DET_CLASSES, SEG_CLASSES, write_dataset  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = osp.join(REPO, 'configs', 'demo', 'supervised_tiny.py')


def tiny_cfg(data_root, work_dir, config=TINY_CONFIG):
    """The tiny config pointed at ``data_root`` (train and val), writing into ``work_dir``."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = data_root
    cfg.work_dir = work_dir
    # mmengine keeps one global visualizer per name: a second Runner in the same process would otherwise log
    # into the first one's work_dir
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex}'
    return cfg


def cfg_options(data_root):
    """``--cfg-options`` pointing every dataset of the tiny config at ``data_root``."""
    return [f'{k}.dataset.data_root={data_root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def unpadded_meta(h, w, **extra):
    """The metainfo of a training sample of ``h`` x ``w`` pixels that fills its batch (no resize, no padding)."""
    return dict(
        img_shape=(h, w),
        ori_shape=(h, w),
        pad_shape=(h, w),
        batch_input_shape=(h, w),
        scale_factor=(1.0, 1.0),
        **extra)
