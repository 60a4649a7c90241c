"""What the dataset converters share: paths in the annotation format, reading images and label PNGs with errors
that name the file, a progress bar over worker processes, and writing the annotation file.

The converters are scripts; they import this module by its folder (``sys.path``), so that it also works when a
converter is loaded from a file path (tests) and when ``--nproc`` pickles these functions into workers.
"""
import json
import os
import os.path as osp
from typing import Callable, List, Tuple

import numpy as np
from PIL import Image

from mtssl_mm.utils.json_io import load_json  # noqa: F401  (JSON reading with errors naming file, line, column)


def rel(path: str, root: str) -> str:
    """``path`` relative to ``root`` with forward slashes (the annotation files' convention)."""
    return osp.relpath(path, root).replace(os.sep, '/')


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) of an image from its header; FileNotFoundError / ValueError naming the file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path} does not exist')
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f'{path}: cannot read the image ({e})') from e
    return h, w


def read_png(path: str) -> np.ndarray:
    """A single-channel PNG as an integer array (H, W); an error naming the file otherwise."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist')
    with Image.open(path) as im:
        if im.mode in ('RGB', 'RGBA', 'LA'):
            raise ValueError(f'{path}: expected a single-channel label map, got PIL mode {im.mode}')
        arr = np.array(im)
    if arr.ndim != 2:
        raise ValueError(f'{path}: expected a single-channel label map, got shape {arr.shape}')
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
