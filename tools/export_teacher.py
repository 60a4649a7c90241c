"""Export the EMA teacher (or the student) of a semi-supervised checkpoint as a ``MultiTaskModel`` checkpoint.

A ``MultiTaskSemiSupervised`` checkpoint holds two models (keys ``student.*``, ``teacher.*``) and the training state
(optimizer, message hub, schedulers, RNG state). The output holds one model, keys without prefix, and loads into
the supervised config of the same model (e.g. ``configs/demo/densefixmatch_tiny.py`` ->
``configs/demo/supervised_tiny.py``) with no missing or unexpected key::

    python tools/export_teacher.py work_dirs/densefixmatch/iter_89250.pth teacher.pth
    python tools/export_teacher.py work_dirs/densefixmatch/iter_89250.pth student.pth --student
    python tools/test.py configs/cityscapes/supervised_partial.py teacher.pth

The input is read with the package's safe loader (``weights_only=True`` and an allowlist, see
``mtssl_mm/utils/checkpoint.py``). The output is ``{'state_dict': ..., 'meta': ...}``: ``meta`` keeps what mmdet and
mmengine read (``dataset_meta``, versions, epoch/iter) and drops the RNG states; ``meta['exported_from']`` records
the source file, the branch and the source's training config text.
"""
import argparse
import os
import os.path as osp
import pickle
import sys

import torch

from mtssl_mm.models.predictor import BRANCHES, branch_state_dict
from mtssl_mm.utils.checkpoint import UnsafeCheckpointError, safe_torch_load

TRAINING_ONLY_META = ('torch_rng_state', 'cuda_rng_state', 'cfg')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export the EMA teacher (default) or the student of a '
                                     'MultiTaskSemiSupervised checkpoint as a MultiTaskModel checkpoint')
    parser.add_argument('checkpoint', help='semi-supervised checkpoint (keys student.*, teacher.*)')
    parser.add_argument('out', help='output file (.pth)')
    parser.add_argument('--student', action='store_true', help='export the student instead of the EMA teacher')
    return parser.parse_args(argv)


def export(checkpoint: str, out: str, branch: str = 'teacher') -> dict:
    """Write the ``branch`` model of a semi-supervised checkpoint to ``out``.

    Args:
        checkpoint (str): Path of a ``MultiTaskSemiSupervised`` checkpoint.
        out (str): Output path; its directory is created.
        branch (str): ``'teacher'`` (the EMA teacher, what validation used) or ``'student'``.

    Returns:
        dict: What was written: ``state_dict`` and ``meta``.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: a file ``torch.load`` cannot read (empty, truncated, not a checkpoint); not a semi-supervised
            checkpoint; ``out`` is the input. The message starts with the file.
        UnsafeCheckpointError: the file needs globals outside the loader's allowlist (not unpickled).
    """
    if branch not in BRANCHES:  # before reading the file
        raise ValueError(f'branch must be one of {BRANCHES}, got {branch!r}')
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file {checkpoint} does not exist')
    if osp.exists(out) and osp.samefile(checkpoint, out):
        raise ValueError(f'{out}: the output would overwrite the input checkpoint')
    try:
        ckpt = safe_torch_load(checkpoint, map_location='cpu')
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - torch.load on a bad file raises anything (EOFError, OSError, KeyError...)
        reason = ' '.join(f'{type(e).__name__}: {e}'.splitlines())  # one line
        raise ValueError(f'{checkpoint}: cannot read the checkpoint ({reason}): truncated, or not a file written by '
                         'torch.save') from e
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get('state_dict'), dict):
        raise ValueError(f'{checkpoint}: not a Runner checkpoint (no state_dict entry; top-level keys: '
                         f'{list(ckpt)[:5] if isinstance(ckpt, dict) else type(ckpt).__name__})')
    state_dict = branch_state_dict(ckpt['state_dict'], branch, checkpoint)
    meta = {k: v for k, v in (ckpt.get('meta') or {}).items() if k not in TRAINING_ONLY_META}
    meta['exported_from'] = dict(
        checkpoint=osp.abspath(checkpoint), branch=branch, cfg=(ckpt.get('meta') or {}).get('cfg'))
    result = dict(state_dict=state_dict, meta=meta)
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    torch.save(result, out)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    branch = 'student' if args.student else 'teacher'
    try:
        result = export(args.checkpoint, args.out, branch)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as error:  # bad input: one line, no traceback
        print(f'{osp.basename(__file__)}: error: {error}', file=sys.stderr)
        return 2
    n = sum(v.numel() for v in result['state_dict'].values())
    print(f'{args.out}: the {branch} of {args.checkpoint}, {len(result["state_dict"])} tensors ({n} values), '
          'loads into the supervised config of the same model')
    return 0


if __name__ == '__main__':
    sys.exit(main())
