"""mtssl_mm.utils.json_io.load_json: a truncated or malformed JSON file is an error naming the file, line, column."""
import pytest

from mtssl_mm.utils.json_io import load_json


def test_valid_file_loads(tmp_path):
    path = tmp_path / 'ok.json'
    path.write_text('{"a": [1, 2],\n "b": null}\n')
    assert load_json(str(path)) == dict(a=[1, 2], b=None)
    assert load_json(str(path), backend_args=dict(backend='local')) == dict(a=[1, 2], b=None)


@pytest.mark.parametrize(
    'text, line, column, reason',
    [
        # truncated (an interrupted download or copy): the error is at the end of the file
        ('{\n "data_list": [\n  {"img_path": "a.png",\n', 4, 1, 'Expecting property name enclosed in double quotes'),
        ('[\n {"name": "a.jpg", "labels": [', 2, 31, 'Expecting value'),
        # malformed in the middle: a trailing comma on line 3
        ('{\n "a": 1,\n "b": [1, 2,],\n "c": 3\n}\n', 3, 13, 'Expecting value'),
        ('', 1, 1, 'Expecting value'),  # an empty file
    ])
@pytest.mark.parametrize('backend_args', [None, dict(backend='local')])
def test_invalid_json_names_file_line_and_column(tmp_path, text, line, column, reason, backend_args):
    path = tmp_path / 'labels.json'
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_json(str(path), backend_args=backend_args)
    assert str(info.value) == f'{path}: invalid JSON at line {line}, column {column}: {reason}'
    assert info.value.__suppress_context__  # the message says it all: no JSONDecodeError traceback above it


def test_binary_file_and_missing_file(tmp_path):
    path = tmp_path / 'bin.json'
    path.write_bytes(b'\xff\xfe\x00garbage')
    with pytest.raises(ValueError, match=r'bin\.json: not UTF-8 text'):
        load_json(str(path))
    with pytest.raises(FileNotFoundError, match='nope.json'):
        load_json(str(tmp_path / 'nope.json'))
