"""What the dataset converters share: paths in the annotation format, reading JSON files, images and label PNGs
with errors that name the file, a progress bar over worker processes, writing the annotation file, and the
command-line error line.

Bad input (a missing, truncated or malformed file, an unknown class name) raises :class:`InputError`, a
``ValueError`` or ``FileNotFoundError`` whose message starts with the file (``<file>[:line:col]: <what>``); the
converters' ``main`` turns it into one line ``<prog>: error: <message>`` and exit status 2
(:func:`exit_on_input_error`). Any other exception is a bug and keeps its traceback.

The converters are scripts; they import this module by its folder (``sys.path``), so that it also works when a
converter is loaded from a file path (tests) and when ``--nproc`` pickles these functions into workers.
"""
import argparse
import contextlib
import json
import os
import os.path as osp
from typing import Any, Callable, Iterator, List, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError


class InputError(Exception):
    """Bad input: the message names the file (``<file>[:line:col]: <what>``); not a bug, so no traceback."""


class InputValueError(InputError, ValueError):
    """A file that exists but is malformed, truncated, of the wrong size, or names an unknown class."""


class InputFileNotFoundError(InputError, FileNotFoundError):
    """A file or folder the converter needs does not exist."""


@contextlib.contextmanager
def exit_on_input_error(parser: argparse.ArgumentParser) -> Iterator[None]:
    """Turn an :class:`InputError` raised inside into one line ``<prog>: error: <message>`` on stderr and exit
    status 2 (argparse's convention for bad command-line input); any other exception propagates with its traceback.

    Raises:
        SystemExit: (status 2) on an :class:`InputError`.
    """
    try:
        yield
    except InputError as e:
        message = ' '.join(str(e).splitlines())  # one line
        parser.exit(2, f'{parser.prog}: error: {message}\n')


def load_json(path: str) -> Any:
    """The parsed content of the JSON file ``path``.

    Raises:
        InputFileNotFoundError: ``path`` does not exist.
        InputValueError: ``'{path}:{line}:{col}: invalid JSON: <reason>'`` for a truncated or malformed file
            (the place where parsing stopped), or ``'{path}: not UTF-8 text (...)'``.
    """
    if not osp.isfile(path):
        raise InputFileNotFoundError(f'{path} does not exist')
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise InputValueError(f'{path}: not UTF-8 text ({e})') from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputValueError(f'{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}') from None


def rel(path: str, root: str) -> str:
    """``path`` relative to ``root`` with forward slashes (the annotation files' convention)."""
    return osp.relpath(path, root).replace(os.sep, '/')


def pil_reason(error: Exception) -> str:
    """Why PIL could not read a file, in one line (PIL's own message repeats the path)."""
    if isinstance(error, UnidentifiedImageError):
        return 'empty, or not an image format PIL knows'
    return ' '.join(f'{type(error).__name__}: {error}'.splitlines())


def image_size(path: str, verify: bool = False) -> Tuple[int, int]:
    """(height, width) of an image from its header.

    Args:
        path (str): The image.
        verify (bool): Also check the whole file (PIL's ``verify``: every PNG chunk and its checksum), so that a
            truncated file is an error; without it only the header is read.

    Raises:
        InputFileNotFoundError: ``path`` does not exist.
        InputValueError: ``'{path}: cannot read the image (<PIL's reason>)'``: not an image, empty, truncated.
    """
    if not osp.isfile(path):
        raise InputFileNotFoundError(f'{path} does not exist (expected an image)')
    try:
        with Image.open(path) as im:
            w, h = im.size
            if verify:
                im.verify()
    except Exception as e:  # noqa: BLE001 - whatever PIL raises on a bad file: re-raised with the file name
        raise InputValueError(f'{path}: cannot read the image ({pil_reason(e)})') from None
    return h, w


def read_png(path: str) -> np.ndarray:
    """A single-channel PNG as an integer array (H, W).

    Raises:
        InputFileNotFoundError: ``path`` does not exist.
        InputValueError: not a readable image (empty, truncated, another format), or not a single-channel map.
    """
    if not osp.isfile(path):
        raise InputFileNotFoundError(f'{path} does not exist')
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.array(im) if mode not in ('RGB', 'RGBA', 'LA') else None
    except Exception as e:  # noqa: BLE001 - whatever PIL raises on a bad file: re-raised with the file name
        raise InputValueError(f'{path}: cannot read the label map ({pil_reason(e)})') from None
    if arr is None:
        raise InputValueError(f'{path}: expected a single-channel label map, got PIL mode {mode}')
    if arr.ndim != 2:
        raise InputValueError(f'{path}: expected a single-channel label map, got shape {arr.shape}')
    return arr


def run_tasks(func: Callable, tasks: list, nproc: int, desc: str, chunksize: int = 16) -> List:
    """``func`` over ``tasks`` with mmengine's progress bar, in ``nproc`` processes (results in order)."""
    from mmengine.utils import track_parallel_progress, track_progress
    print(f'{desc}: {len(tasks)} images')
    if nproc > 1 and len(tasks) > 1:
        return track_parallel_progress(func, tasks, nproc, chunksize=chunksize)
    return track_progress(func, tasks)


def dump(ann: dict, path: str) -> None:
    """Write an annotation (or split, or task) file, creating its folder."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(ann, f)
