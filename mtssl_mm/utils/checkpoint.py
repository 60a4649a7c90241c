"""Load checkpoints without running code: ``weights_only=True`` plus the few globals a Runner checkpoint holds.

A ``.pth`` file is a pickle, and a full unpickle (``torch.load(..., weights_only=False)``) runs whatever the file
asks for. torch's ``weights_only=True`` unpickler only rebuilds tensors, containers and the globals it is told are
safe. An mmengine Runner checkpoint needs these, and only these (``get_unsafe_globals_in_checkpoint`` on the
checkpoints of the tiny supervised and semi-supervised configs, with the EMA teacher, RNG-state hook and message
hub; numpy 2.x, torch.save's pickle protocol 2):

* numpy scalars and arrays (message hub values, best scores): ``numpy._core.multiarray.scalar``,
  ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``; numpy 1.x wrote the same functions
  as ``numpy.core.multiarray.*``, which map to the same objects here. ``numpy.dtype('f8')`` builds an instance of
  ``numpy.dtypes.Float64DType`` whose state torch sets only if that class is allowed: the checkpoints hold
  ``Float64DType`` and ``Int64DType``; the other fixed-size numeric and bool dtypes are allowed too (a logged value
  may have any of them), the object, string and void dtypes are not;
* the message hub's ``mmengine.logging.history_buffer.HistoryBuffer``, which pickles its statistics methods as
  ``getattr(HistoryBuffer, 'mean')``: ``builtins.getattr`` is *not* allowed; the name resolves to
  :func:`history_buffer_method`, which returns a ``HistoryBuffer`` statistics method and refuses anything else.

Every mmengine scheme ends up here (:func:`patch_checkpoint_loader`, run on ``import mtssl_mm``):

* local paths (``load_from``, ``--resume``, ``Pretrained`` init_cfg, ``load_checkpoint``): :func:`load_from_local`;
* ``http(s)://``, and through it ``torchvision://``, ``modelzoo://``, ``open-mmlab://`` and ``mmcls://`` (mmengine
  resolves those to a URL and calls ``mmengine.runner.checkpoint.load_from_http``, which is replaced too):
  :func:`load_from_http`, torch's hub download with ``weights_only=True``;
* every other registered scheme (``pavi://``, ``s3://``) calls ``torch.load`` with torch's default, which is
  ``weights_only=True`` on torch >= 2.6 (unless the user sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``); it runs
  inside the allowlist, with the same error.

A file that needs anything else is refused with :class:`UnsafeCheckpointError`, which names the file and the
offending globals. The allowlist is active only while a checkpoint loads (torch's ``safe_globals`` context
manager), not registered process-wide with ``add_safe_globals``: other ``torch.load(weights_only=True)`` calls in
the process (user code, other libraries) keep torch's own list, and ``builtins.getattr`` keeps meaning nothing to
them.
"""
import functools
import os.path as osp
import pickle
from collections import OrderedDict
from typing import Callable, List, Optional

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')
SOURCE_KEY = 'mtssl_mm_checkpoint'
"""Key in each entry of a loaded state dict's ``_metadata``: the file (or URL) it came from, for error messages."""


def history_buffer_method(obj, name: str):
    """What ``builtins.getattr`` means inside a checkpoint: a statistics method of ``HistoryBuffer``, nothing else.

    Args:
        obj: Must be the ``HistoryBuffer`` class.
        name (str): One of ``HistoryBuffer``'s own statistics methods: ``min``, ``max``, ``current``, ``mean``
            (a method added with ``HistoryBuffer.register_statistics`` is pickled by its own name, not by getattr).

    Returns:
        Callable: ``getattr(HistoryBuffer, name)``.

    Raises:
        pickle.UnpicklingError: for any other object or name.
    """
    if obj is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed: only statistics methods of '
                                 'mmengine HistoryBuffer may be looked up in a checkpoint')


NUMPY_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.float16,
                np.float32, np.float64)

SAFE_GLOBALS = [
    np.ndarray,
    np.dtype,
    *(type(np.dtype(t)) for t in NUMPY_DTYPES),
    (_reconstruct, 'numpy._core.multiarray._reconstruct'),
    (_reconstruct, 'numpy.core.multiarray._reconstruct'),
    (scalar, 'numpy._core.multiarray.scalar'),
    (scalar, 'numpy.core.multiarray.scalar'),
    HistoryBuffer,
    (history_buffer_method, 'builtins.getattr'),
]
"""The globals a Runner checkpoint may contain besides torch's defaults (see the module docstring)."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint that needs globals outside :data:`SAFE_GLOBALS`; it was not loaded."""


class allowlist:
    """Context manager: :data:`SAFE_GLOBALS` are allowed in ``weights_only`` loads inside it.

    Adds only the entries not registered already, so leaving it keeps globals the user registered before (torch's
    ``safe_globals`` removes everything it was given on exit).
    """

    def __enter__(self):
        present = set(torch.serialization.get_safe_globals())
        self._added = torch.serialization.safe_globals([g for g in SAFE_GLOBALS if g not in present])
        self._added.__enter__()
        return self

    def __exit__(self, *exc):
        self._added.__exit__(*exc)
        return False


def unpickler_reason(error: Exception) -> str:
    """The cause in torch's weights-only error (the line after ``WeightsUnpickler error:``), without its advice."""
    text = str(error)
    tail = text.split('WeightsUnpickler error:', 1)[-1]
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[0] if lines else text


def refusal(filename: str, offending: List[str], reason: Optional[str] = None) -> UnsafeCheckpointError:
    """The error for a checkpoint that is not loaded, naming the file and what it would have run."""
    what = f'it contains the global(s) {sorted(offending)}' if offending else f'its pickle was refused ({reason})'
    return UnsafeCheckpointError(
        f'{filename}: checkpoint not loaded, because unpickling it could run code: {what}, outside the allowlist of '
        'mtssl_mm.utils.checkpoint.SAFE_GLOBALS (tensors, containers, numpy scalars/arrays, mmengine HistoryBuffer). '
        'If you trust this file, open it yourself with torch.load(path, weights_only=False) and torch.save only its '
        "tensors (e.g. {'state_dict': ckpt['state_dict']}).")


def safe_torch_load(filename: str, map_location=None, source: Optional[str] = None):
    """``torch.load(filename, weights_only=True)`` with :data:`SAFE_GLOBALS` allowed.

    The globals of a zip checkpoint are listed before anything is unpickled, so the error names all of them.

    Args:
        filename (str): Path of a file written by ``torch.save``.
        map_location: As in :func:`torch.load`.
        source (str, optional): Name for messages (the URL of a downloaded file); default ``filename``.

    Returns:
        The loaded object.

    Raises:
        UnsafeCheckpointError: the file needs globals outside the allowlist.
    """
    source = source or filename
    with allowlist():
        try:
            offending = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        except (ValueError, RuntimeError, pickle.UnpicklingError):
            offending = []  # not a zip checkpoint (legacy format): the weights-only unpickler below decides
        if offending:
            raise refusal(source, offending)
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            raise refusal(source, [], unpickler_reason(error)) from error


def tag_source(checkpoint, source: str):
    """Record ``source`` in the ``_metadata`` of the checkpoint's state dict (returned, possibly as an OrderedDict).

    ``_metadata`` travels with the state dict through mmengine's key revision and into every module's
    ``_load_from_state_dict`` (as ``local_metadata``), so a key mismatch found there can name the file
    (``mtssl_mm/models/state_dict_check.py``). A plain ``dict`` becomes an ``OrderedDict`` to carry it.
    """
    if not isinstance(checkpoint, dict):
        return checkpoint
    if type(checkpoint) is dict:
        checkpoint = OrderedDict(checkpoint)
    holder, key = (checkpoint, 'state_dict') if isinstance(checkpoint.get('state_dict'), dict) else (None, None)
    state_dict = checkpoint[key] if holder is not None else checkpoint
    if type(state_dict) is dict:
        state_dict = OrderedDict(state_dict)
        holder[key] = state_dict
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is None:
        metadata = state_dict._metadata = OrderedDict([('', {})])
    for entry in metadata.values():
        if isinstance(entry, dict):
            entry[SOURCE_KEY] = source
    return checkpoint


def load_from_local(filename: str, map_location=None):
    """mmengine's loader for paths without a scheme (``load_from``, ``--resume``, ``Pretrained``), made safe.

    Args:
        filename (str): Path to the checkpoint file (``~`` is expanded).
        map_location (str | None): As in :func:`torch.load`.

    Returns:
        dict | OrderedDict: The loaded checkpoint.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file needs globals outside :data:`SAFE_GLOBALS`.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename} does not exist')
    return tag_source(safe_torch_load(filename, map_location=map_location), filename)


def load_from_http(filename: str, map_location=None, model_dir: Optional[str] = None, progress: bool = False):
    """mmengine's ``http(s)://`` loader with ``weights_only=True`` (mmengine's passes torch hub's default, False).

    Rank 0 downloads first (into torch hub's cache, or ``model_dir``), the other ranks read the cached file after
    a barrier, as in mmengine.
    """
    rank, world_size = get_dist_info()

    def load():
        with allowlist():
            try:
                return torch.hub.load_state_dict_from_url(
                    filename, model_dir=model_dir, map_location=map_location, progress=progress, weights_only=True)
            except pickle.UnpicklingError as error:
                raise refusal(filename, [], unpickler_reason(error)) from error

    checkpoint, error = None, None
    if rank == 0:
        try:
            checkpoint = load()
        except Exception as e:  # reach the barrier first: the other ranks must not wait for rank 0 forever
            error = e
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = load()  # the refused file is in the hub cache, so every rank raises the same error
    if error is not None:
        raise error
    return tag_source(checkpoint, filename)


def with_allowlist(loader: Callable) -> Callable:
    """Wrap a scheme loader of mmengine: it runs with :data:`SAFE_GLOBALS` allowed and refuses with our error."""
    if getattr(loader, '_mtssl_mm_safe', False):
        return loader

    @functools.wraps(loader)
    def wrapped(filename, *args, **kwargs):
        with allowlist():
            try:
                return loader(filename, *args, **kwargs)
            except UnsafeCheckpointError:
                raise
            except pickle.UnpicklingError as error:
                raise refusal(filename, [], unpickler_reason(error)) from error

    wrapped._mtssl_mm_safe = True
    return wrapped


def patch_checkpoint_loader() -> None:
    """Make every mmengine checkpoint scheme load with ``weights_only=True`` and :data:`SAFE_GLOBALS` (idempotent).

    Registers :func:`load_from_local` for paths without a scheme and :func:`load_from_http` for ``http(s)://``,
    points ``mmengine.runner.checkpoint.load_from_http`` (what ``torchvision://``, ``open-mmlab://`` and
    ``mmcls://`` download through) at :func:`load_from_http`, and wraps every other registered loader in the
    allowlist.
    """
    load_from_local._mtssl_mm_safe = load_from_http._mtssl_mm_safe = True
    mmengine_checkpoint.load_from_http = load_from_http
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_from_http, force=True)
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if not getattr(loader, '_mtssl_mm_safe', False):
            CheckpointLoader.register_scheme(prefixes=prefix, loader=with_allowlist(loader), force=True)
