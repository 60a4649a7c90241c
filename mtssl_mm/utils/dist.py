"""Distributed training on machines without CUDA (gloo), for tests and CPU clusters.

mmengine 0.10.7's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and its Runner wraps the model in
DDP with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. On such machines we initialise the gloo
process group ourselves (the Runner then skips its own ``init_dist``), wrap with ``device_ids=None`` and turn
off SyncBN (``torch.nn.SyncBatchNorm`` has no CPU kernel).

At the end of a distributed run, ``tools/train.py`` and ``tools/test.py`` drop the Runner and call
:func:`destroy_distributed`: a gloo process group left to the interpreter's exit can abort the process after the
run has succeeded.
"""
import gc
import os
import time
import warnings

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


def gloo_threads():
    """Names of this process's gloo threads (``pt_gloo_runloop`` workers, ``gloo_tcp_loop``); Linux only, else []."""
    try:
        tasks = os.listdir('/proc/self/task')
    except OSError:
        return []
    names = []
    for tid in tasks:
        try:
            with open(f'/proc/self/task/{tid}/comm') as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if 'gloo' in name:
            names.append(name)
    return sorted(names)


def destroy_distributed():
    """End a distributed run: wait for every rank, destroy the process groups, free them; no-op when not
    distributed. Call it on every rank after the run succeeded, after dropping the Runner (``del runner``).

    mmengine's Runner never destroys the process group. Left to the interpreter's exit, gloo's worker threads
    (``pt_gloo_runloop``, ``ProcessGroupGloo::runLoop``) outlive the main thread; when one of them releases the
    last reference to a finished collective whose tensors have Python objects, it needs the GIL, and a thread
    asking for the GIL while the interpreter finalizes is ended with ``pthread_exit``, whose unwinding through
    C++ ends in ``terminate called without an active exception`` (SIGABRT) - after a run that had succeeded.
    Seen in the 2-process BDD100K test (about 1 run in 10 under CPU load) and in a bare gloo all_reduce script;
    the same mechanism is described in pytorch/pytorch#179291 (an abandoned atexit fix in torch itself), and
    pytorch/torchtitan#1342 likewise destroys the group only after a successful run. ``destroy_process_group``
    alone does not stop those threads while the DDP model's reducer still holds the group: the group (and its
    threads, joined by its destructor) goes only when nothing references it, hence ``del runner`` before and
    ``gc.collect()`` here (the Runner sits in reference cycles).

    Not to be called after an exception: a rank blocked in a collective would never reach the barrier, and
    destroying NCCL groups while other ranks use them can hang.

    Returns:
        bool: True if a process group was destroyed.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return False
    if dist.get_backend() == 'nccl':  # the barrier on this rank's GPU (torch warns when it has to guess)
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()  # every rank has finished its last collective
    dist.destroy_process_group()
    gc.collect()  # the dropped Runner's cycles: the DDP reducer's reference to the group goes with them
    left = gloo_threads()
    deadline = time.monotonic() + 2.0  # a thread that just exited can stay listed in /proc for a moment
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = gloo_threads()
    if left:
        warnings.warn(f'gloo threads {left} are still alive after destroy_process_group: something still '
                      'references the process group (del the Runner before destroy_distributed); the process '
                      'may abort at exit with "terminate called without an active exception"')
    else:
        print_log('Process group destroyed; no gloo thread left.', 'current')
    return True
