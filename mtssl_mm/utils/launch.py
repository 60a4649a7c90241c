"""What the tools share around mmengine's Runner, as mmdet's ``tools/train.py`` and ``tools/test.py`` do.

- The prelude of ``tools/train.py`` and ``tools/test.py``: the launcher flags (:func:`add_launch_args`,
  :func:`parse_launch_args`) and the config (:func:`load_config`: the file, ``--cfg-options``, the launcher,
  ``work_dir``).
- The run and its teardown (:func:`run_runner`, :func:`distributed_run`): the process group a run set up, or the
  Runner did, is destroyed when the run ends, also when it raises.
- Lookups by type in a config's lists (:func:`index_of_type`: a pipeline's transforms, ``custom_hooks``), for the
  tools that edit a config: positions change whenever a config gains or loses an entry, types do not.
"""
import gc
import logging
import os
import os.path as osp
import time
import traceback
from contextlib import contextmanager
from typing import Sequence, Tuple

import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from .dist import destroy_distributed, gloo_threads, setup_cpu_distributed

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


# ------------------------------------------------------------------------------------------------- prelude
def add_launch_args(parser):
    """Add mmdet's ``--cfg-options``, ``--launcher`` and ``--local_rank`` (``--local-rank``) to ``parser``."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs (e.g. '
        'train_cfg.max_iters=1000 model.backbone.init_cfg=None)')
    parser.add_argument('--launcher', choices=list(LAUNCHERS), default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_launch_args(parser, argv=None):
    """``parser.parse_args(argv)``; ``LOCAL_RANK`` taken from ``--local_rank`` unless the launcher set it."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(args, required: Sequence[Tuple[str, str]] = ()) -> Config:
    """The config of a tool's run, as mmdet's tools build it.

    ``args.config`` loaded, ``cfg.launcher = args.launcher``, ``args.cfg_options`` merged, and ``work_dir`` set:
    ``args.work_dir``, else the config's own, else ``./work_dirs/<config name>``.

    Args:
        args (argparse.Namespace): With ``config``, ``work_dir``, ``cfg_options`` and ``launcher``.
        required (Sequence[tuple]): ``(path, what)`` of the other files the tool needs (a checkpoint), checked
            after the config file and before anything is loaded.

    Raises:
        FileNotFoundError: The config, or a file of ``required``, does not exist (the message says which).
    """
    for path, what in ((args.config, 'config file'), *required):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


# ----------------------------------------------------------------------------------------- run, teardown
def build_runner(cfg):
    """mmengine's Runner of ``cfg`` (``RUNNERS.build`` when the config names a ``runner_type``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def abort_distributed() -> bool:
    """End the process group without waiting for the other ranks (no barrier); no-op when there is none.

    For a run that raised: a rank blocked in a collective would never reach :func:`destroy_distributed`'s barrier.
    NCCL groups are aborted (``ncclCommAbort``), since destroying a communicator other ranks still use can hang;
    other backends are destroyed. As in :func:`destroy_distributed`, gloo's threads end only with the last
    reference to the group: the caller drops the Runner first (:func:`run_runner` clears the traceback's frames);
    a warning names the threads still alive after 2 s.

    Returns:
        bool: True if a process group was ended.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return False
    abort = getattr(dist.distributed_c10d, '_abort_process_group', None)
    if dist.get_backend() == 'nccl' and abort is not None:
        abort()
    else:
        dist.destroy_process_group()
    gc.collect()  # the Runner's cycles, and with them the DDP reducer's reference to the group
    left = gloo_threads()
    deadline = time.monotonic() + 2.0  # a thread that just exited can stay listed in /proc for a moment
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = gloo_threads()
    message = 'The run raised: process group ended without waiting for the other ranks'
    if left:
        message += f'; gloo threads {left} are still alive (something still references the group)'
    print_log(message + '.', 'current', logging.WARNING)
    return True


@contextmanager
def distributed_run(cfg, launcher: str):
    """The distributed set-up and teardown around a run.

    Entering: :func:`~mtssl_mm.utils.setup_cpu_distributed` (the gloo group of a CPU run; with CUDA the Runner
    initialises the group itself). Leaving normally: :func:`~mtssl_mm.utils.dist.destroy_distributed` (every rank
    waits for the others, the group is destroyed, no gloo thread is left to abort the interpreter's exit; the
    block must have dropped its Runner). Leaving by an exception, or when that teardown raises:
    :func:`abort_distributed`. Either way no process group outlives the block.
    """
    try:
        setup_cpu_distributed(cfg, launcher)
        yield
        destroy_distributed()
    finally:
        abort_distributed()  # no-op once destroy_distributed has run


def run_runner(cfg, launcher: str, mode: str) -> None:
    """Build the Runner of ``cfg`` and run ``mode`` (``'train'``, ``'test'``, ``'val'``) inside
    :func:`distributed_run`; the Runner, whose DDP model holds the process group, is dropped before the teardown.

    When the run raises in a distributed run, the local variables of the traceback's finished frames (the Runner
    among them) are cleared before the group is ended, so that gloo's threads end with it; the traceback prints
    the same. A run without a process group keeps them (for a post-mortem debugger).
    """
    with distributed_run(cfg, launcher):
        try:
            _run(cfg, mode)  # its frame, the only reference to the Runner, is gone once it returns
        except BaseException as exc:
            if dist.is_available() and dist.is_initialized():
                clear_frames(exc)
            raise


def _run(cfg, mode: str) -> None:
    runner = build_runner(cfg)
    getattr(runner, mode)()


def clear_frames(exc: BaseException) -> None:
    """Clear the local variables of the finished frames in the tracebacks of ``exc`` and of the exceptions it
    chains (``__cause__``, ``__context__``); frames still running (the caller's) are left as they are."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


# --------------------------------------------------------------------------------------- lookups by type
def type_name(entry) -> str:
    """The type of a config entry (``dict(type=...)``) as a name without scope: ``'mmdet.RandomCrop'``,
    ``'RandomCrop'`` and the class ``RandomCrop`` all give ``'RandomCrop'``."""
    t = entry.get('type')
    name = t if isinstance(t, str) else getattr(t, '__name__', repr(t))
    return name.rsplit('.', 1)[-1]


def index_of_type(entries: Sequence[dict], type_: str, config: str, key: str) -> int:
    """The position of the one entry of type ``type_`` in the config list ``entries`` (``config``'s ``key``).

    Args:
        entries (Sequence[dict]): A list of a config: a pipeline, ``custom_hooks``.
        type_ (str): The type to find (without scope).
        config (str): The config file, for the messages.
        key (str): Where ``entries`` sit in the config (``'train_dataloader.dataset.pipeline'``), for the messages.

    Raises:
        KeyError: No entry of that type (the message names the config, the key, the type and the types there).
        ValueError: Several entries of that type.
    """
    found = [i for i, entry in enumerate(entries) if type_name(entry) == type_]
    if not found:
        raise KeyError(f'{config}: {key} has no {type_} (its types: {[type_name(e) for e in entries]})')
    if len(found) > 1:
        raise ValueError(f'{config}: {key} has {len(found)} entries of type {type_} (positions {found}); '
                         'expected one')
    return found[0]
