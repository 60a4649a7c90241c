"""Checkpoint keys must fit the model: an error, not mmengine's warning.

mmengine's ``load_from``, ``--resume``, ``load_checkpoint`` and ``Pretrained`` init load non-strictly: keys that do
not fit are logged as a warning, and the model goes on with those weights at their initial values. The models
call :func:`check_keys` from ``_load_from_state_dict``, which every loader (mmengine's and torch's
``load_state_dict``) calls on the module with the state dict and the module's key ``prefix``, so the check works
wherever the model sits (``module.`` under DDP or a TTA wrapper, ``student.`` inside the semi-supervised wrapper).
"""
from typing import List, Optional, Sequence

from ..utils.checkpoint import SOURCE_KEY
from .predictor import is_semi_supervised

SHOWN = 5  # keys listed per kind in an error


class CheckpointKeysError(RuntimeError):
    """A state dict whose keys do not fit the model it is loaded into; nothing was loaded."""


def own_keys(state_dict, prefix: str) -> List[str]:
    """The keys of ``state_dict`` under ``prefix``, without it."""
    return [k[len(prefix):] for k in state_dict if k.startswith(prefix)]


def expected_keys(module) -> List[str]:
    """The module's state dict keys (parameters and persistent buffers), without any prefix."""
    return list(module.state_dict(keep_vars=True).keys())


def source_of(local_metadata: Optional[dict]) -> str:
    """The checkpoint file recorded by ``mtssl_mm.utils.checkpoint.tag_source``, or a generic name."""
    source = (local_metadata or {}).get(SOURCE_KEY)
    return str(source) if source else 'the state dict'


def _listing(kind: str, keys: Sequence[str]) -> str:
    more = f', ... ({len(keys) - SHOWN} more)' if len(keys) > SHOWN else ''
    return f'{len(keys)} {kind} ({", ".join(keys[:SHOWN])}{more})'


def check_keys(model: str,
               found: Sequence[str],
               expected: Sequence[str],
               prefix: str = '',
               local_metadata: Optional[dict] = None,
               what: str = '') -> None:
    """Raise if ``found`` (checkpoint keys) and ``expected`` (model keys) differ, both without ``prefix``.

    A missing BN ``num_batches_tracked`` is accepted, as mmengine does (checkpoints from before torch 0.4.1).

    Args:
        model (str): The model's class name, for the message.
        found (Sequence[str]): Keys of the checkpoint under ``prefix``, without it.
        expected (Sequence[str]): Keys of the model, without prefix.
        prefix (str): Where the model sits in the module being loaded (``''``, ``'module.'``).
        local_metadata (dict, optional): The ``local_metadata`` given to ``_load_from_state_dict`` (names the file).
        what (str): Added to the message (what kind of checkpoint this was taken for).

    Raises:
        CheckpointKeysError: listing (a few of) the missing and unexpected keys, and the file.
    """
    found_set, expected_set = set(found), set(expected)
    missing = [k for k in expected if k not in found_set and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in found if k not in expected_set]
    if not missing and not unexpected:
        return
    source = source_of(local_metadata)
    where = f' (at {prefix!r})' if prefix else ''
    if is_semi_supervised(found) and not is_semi_supervised(expected):
        raise CheckpointKeysError(
            f'{source}: a semi-supervised checkpoint (MultiTaskSemiSupervised, keys student.*/teacher.*) does not '
            f'load into {model}{where}. Export its EMA teacher (or --student) as a {model} checkpoint and load that: '
            f'python tools/export_teacher.py {source if source != "the state dict" else "<ckpt>"} <out.pth>')
    parts = [_listing('missing', missing)] if missing else []
    parts += [_listing('unexpected', unexpected)] if unexpected else []
    raise CheckpointKeysError(
        f'{source}: the checkpoint{what} does not fit {model}{where}: {"; ".join(parts)}. {model} is not loaded '
        '(mmengine would only warn and leave those weights at their initial values); load a checkpoint of the '
        'same model config.')
