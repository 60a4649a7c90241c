"""Distributed training on machines without CUDA (gloo), for tests and CPU clusters.

mmengine 0.10.7's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and its Runner wraps the model in
DDP with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. On such machines we initialise the gloo
process group ourselves (the Runner then skips its own ``init_dist``), wrap with ``device_ids=None`` and turn
off SyncBN (``torch.nn.SyncBatchNorm`` has no CPU kernel).
"""
import torch
import torch.distributed as dist
from mmengine.logging import print_log


def setup_cpu_distributed(cfg, launcher):
    """Prepare ``cfg`` for a CPU (gloo) distributed run; no-op with CUDA or without a launcher.

    Args:
        cfg (mmengine.Config): The full config; edited in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        bool: True if this function set up a CPU distributed run.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(f'--launcher {launcher} needs CUDA; without a GPU use tools/dist_train.sh '
                           '(--launcher pytorch, gloo backend)')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
    if cfg.get('sync_bn') is not None:
        print_log('No CUDA: SyncBN disabled for this CPU distributed run (per-process BN).', 'current')
        cfg.sync_bn = None
    return True
