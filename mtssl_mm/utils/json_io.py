"""Read a JSON file; a truncated or malformed one is an error naming the file, the line and the column.

``json.load`` alone raises ``JSONDecodeError: Expecting ',' delimiter: line 1 column 5242881 (char 5242880)``
without the file's name, which is what a user needs to see when one of several label files is truncated (an
interrupted download or copy). Used by ``MultiTaskDataset`` (annotation and split files),
``tools/dataset_converters/bdd100k.py`` and ``tools/make_partial_split.py``.

This module imports only the standard library (and mmengine's file client when ``backend_args`` is given).
"""
import json
from typing import Any, Optional


def load_json(path: str, backend_args: Optional[dict] = None) -> Any:
    """The parsed content of the JSON file ``path``.

    Args:
        path (str): The file.
        backend_args (dict, optional): mmengine file backend arguments (e.g. for remote storage); without
            them the file is read from the local disk.

    Returns:
        The decoded JSON value.

    Raises:
        FileNotFoundError: ``path`` does not exist (local files).
        ValueError: ``'{path}: invalid JSON at line L, column C: <reason>'`` for a truncated or malformed file,
            or ``'{path}: not UTF-8 text (...)'``.
    """
    try:
        if backend_args is None:
            with open(path, encoding='utf-8') as f:
                text = f.read()
        else:
            from mmengine.fileio import get_text
            text = get_text(path, backend_args=backend_args)
    except UnicodeDecodeError as e:
        raise ValueError(f'{path}: not UTF-8 text ({e})') from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}') from None
