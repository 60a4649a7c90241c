"""Bad input to the command-line tools stops them with one line ``<prog>: error: <file>[:line:col]: <what>`` on
stderr and exit status 2, never a traceback (issue #21 §5): the dataset converters, make_partial_split.py, the
analysis tools and export_teacher.py. Errors that are bugs keep their traceback.

Each case damages a small tree in the official format (tests/official_fixtures.py) and runs the tool's ``main``
(argparse's ``prog`` is then the test runner's name, so only the part after ``: error: `` is compared) or, where
the traceback itself is the point, the script in a subprocess.
"""
import json
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from fixtures import TINY_CONFIG
from official_fixtures import REPO, B, E, bdd_det_frames, load_tool, write_bdd100k, write_cityscapes

bdd = load_tool('dataset_converters/bdd100k.py')
cs = load_tool('dataset_converters/cityscapes.py')
mps = load_tool('make_partial_split.py')

BREMEN_GT = 'gtFine/train/bremen/bremen_000000_000019'
FRANKFURT_GT = 'gtFine/val/frankfurt/frankfurt_000000_000294'


def error_line(capsys, main, argv) -> str:
    """Run ``main(argv)``: it must exit with status 2 and print exactly one line ``<prog>: error: <message>`` on
    stderr; the message."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.endswith('\n') and err.count('\n') == 1, f'not one line:\n{err}'
    prog, sep, message = err[:-1].partition(': error: ')
    assert sep and prog and ' ' not in prog, err
    return message


def run_script(tool, *args, timeout=300):
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', tool), *map(str, args)],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1', MPLBACKEND='Agg'))


def assert_script_error(proc, prog, message):
    """The script stopped with status 2 and exactly the line ``<prog>: error: <message>`` on stderr."""
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr == f'{prog}: error: {message}\n', proc.stderr[-3000:]


def truncate(path, keep=0.5):
    """Keep the first ``keep`` of the file's bytes (an interrupted download or copy)."""
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


def cut_json(text, key):
    """``text`` cut just before a ``key`` in its second half, and the line and column where parsing stops."""
    cut = text[:text.index(key, len(text) // 2)]
    return cut, cut.count('\n') + 1, len(cut) - cut.rfind('\n')


# ------------------------------------------------------------------------------------------------- BDD100K
@pytest.fixture
def bdd_tree(tmp_path):
    root = str(tmp_path / 'bdd')
    write_bdd100k(root)
    return root


def test_bdd100k_truncated_label_json_is_one_line_with_line_and_column(bdd_tree):
    """The case of the issue: a truncated det_train.json printed a traceback that ended in the right message."""
    path = osp.join(bdd_tree, 'labels', 'det_20', 'det_train.json')
    cut, line, col = cut_json(json.dumps(bdd_det_frames()['train'], indent=1), '"box2d"')
    with open(path, 'w') as f:
        f.write(cut)
    assert line > 10
    proc = run_script('dataset_converters/bdd100k.py', bdd_tree)
    assert_script_error(proc, 'bdd100k.py',
                        f'{path}:{line}:{col}: invalid JSON: Expecting property name enclosed in double quotes')
    assert not osp.exists(osp.join(bdd_tree, 'annotations', 'train.json'))


def damage_bdd(root, case):
    """Damage the tree for ``case``; the expected message (a regex, the file escaped)."""
    det = osp.join(root, 'labels', 'det_20')
    masks = osp.join(root, 'labels', 'sem_seg', 'masks')
    if case == 'missing label file':
        path = osp.join(det, 'det_val.json')
        os.remove(path)
        return re.escape(f'{path} does not exist (expected Scalabel detection labels)')
    if case == 'missing folder':
        path = osp.join(root, 'images', '10k', 'val')
        for f in os.listdir(path):
            os.remove(osp.join(path, f))
        os.rmdir(path)
        return re.escape(f'{path} does not exist (expected the 10k val images)')
    if case == 'missing root':
        return re.escape(f'{osp.join(root, "nowhere")} does not exist (expected the BDD100K root)')
    if case == 'not a list of frames':
        path = osp.join(det, 'det_val.json')
        with open(path, 'w') as f:
            json.dump(dict(name='x.jpg'), f)
        return re.escape(f'{path}: expected a list of Scalabel frames or {{"frames": [...]}}')
    if case == 'labels not a list':
        path = osp.join(det, 'det_val.json')
        frames = bdd_det_frames()['val']
        frames[1]['labels'] = 'car'
        with open(path, 'w') as f:
            json.dump(frames, f)
        return re.escape(f'{path}: frame {frames[1]["name"]}: "labels" is not a list of objects: car')
    if case == 'unknown category':
        path = osp.join(det, 'det_train.json')
        frames = bdd_det_frames()['train']
        frames[1]['labels'].append(dict(id='9', category='unicorn', box2d=dict(x1=0, y1=0, x2=3, y2=3)))
        with open(path, 'w') as f:
            json.dump(frames, f)
        return re.escape(f"{path}: frame {B}.jpg: unknown category 'unicorn'; known: ") + '.*'
    if case == 'not UTF-8':
        path = osp.join(det, 'det_train.json')
        with open(path, 'wb') as f:
            f.write(b'\xff\xfe[')
        return re.escape(f'{path}: not UTF-8 text (') + '.*'
    path = osp.join(masks, 'train', f'{E}.png')
    if case == 'mask of another size':
        cv2.imwrite(path, np.zeros((16, 64), np.uint8))
        return re.escape(f'{path}: size 64x16 (WxH) differs from its image ') + '.*'
    if case == 'empty mask':
        open(path, 'wb').close()
        return re.escape(f'{path}: cannot read the image (empty, or not an image format PIL knows)')
    if case == 'truncated mask':  # the header is intact: only reading the whole file finds it
        truncate(path, 0.6)
        return re.escape(f'{path}: cannot read the image (') + '.*'
    raise KeyError(case)


@pytest.mark.parametrize('case', [
    'missing label file', 'missing folder', 'missing root', 'not a list of frames', 'labels not a list',
    'unknown category', 'not UTF-8', 'mask of another size', 'empty mask', 'truncated mask'
])
def test_bdd100k_bad_input_is_one_line_naming_the_file(bdd_tree, capsys, case):
    expected = damage_bdd(bdd_tree, case)
    root = osp.join(bdd_tree, 'nowhere') if case == 'missing root' else bdd_tree
    message = error_line(capsys, bdd.main, [root])
    assert re.fullmatch(expected, message), message


def test_bdd100k_bad_mask_in_a_worker_process_is_one_line(bdd_tree):
    """--nproc 2: the sizes are read in worker processes; their error still gives the one line."""
    path = osp.join(bdd_tree, 'labels', 'sem_seg', 'masks', 'train', f'{E}.png')
    cv2.imwrite(path, np.zeros((16, 64), np.uint8))
    proc = run_script('dataset_converters/bdd100k.py', bdd_tree, '--nproc', '2', timeout=120)
    assert 'Traceback' not in proc.stderr and proc.returncode == 2, proc.stderr[-3000:]
    assert re.fullmatch(
        re.escape(f'bdd100k.py: error: {path}: size 64x16 (WxH) differs from its image ') + '.*\n',
        proc.stderr), proc.stderr


def test_bdd100k_bug_keeps_its_traceback(bdd_tree, monkeypatch):
    """An exception that is not about the input (here a ValueError from inside the work) is not turned into the
    one line: it propagates with its traceback."""

    def broken(*args, **kwargs):
        raise ValueError('a bug')

    monkeypatch.setattr(bdd, 'convert_label', broken)
    with pytest.raises(ValueError, match='a bug'):
        bdd.main([bdd_tree])


# ---------------------------------------------------------------------------------------------- Cityscapes
@pytest.fixture
def cs_tree(tmp_path):
    root = str(tmp_path / 'cs')
    write_cityscapes(root, train_extra=None, sequence=False)
    return root


def damage_cityscapes(root, case):
    """Damage the tree for ``case``; the expected message (a regex)."""
    inst = osp.join(root, f'{BREMEN_GT}_gtFine_instanceIds.png')
    label = osp.join(root, f'{FRANKFURT_GT}_gtFine_labelIds.png')
    if case == 'missing label map':
        os.remove(inst)
        return re.escape(f'{inst} does not exist')
    if case == 'missing image':
        path = osp.join(root, 'leftImg8bit/train/bremen/bremen_000000_000019_leftImg8bit.png')
        os.remove(path)
        return re.escape(f'{path} does not exist (the image labeled by ') + '.*'
    if case == 'missing gtFine folder':
        path = osp.join(root, 'gtFine', 'val')
        os.rename(path, path + '_moved')
        return re.escape(f'{path} does not exist (the gtFine labels of {osp.join(root, "leftImg8bit", "val")})')
    if case == 'empty label map':
        open(label, 'wb').close()
        return re.escape(f'{label}: cannot read the label map (empty, or not an image format PIL knows)')
    if case == 'truncated label map':
        truncate(inst, 0.5)
        return re.escape(f'{inst}: cannot read the label map (') + '.*'
    if case == 'RGB label map':
        cv2.imwrite(label, np.zeros((40, 80, 3), np.uint8))
        return re.escape(f'{label}: expected a single-channel label map, got PIL mode RGB')
    if case == 'label map of another size':
        cv2.imwrite(label, np.full((20, 80), 7, np.uint8))
        return re.escape(f'{label}: size 80x20 (WxH) differs from its image ') + '.*'
    if case == 'unknown class':
        arr = cv2.imread(inst, cv2.IMREAD_UNCHANGED)
        arr[0, 0] = 40001  # label id 40 does not exist
        cv2.imwrite(inst, arr)
        return re.escape(f'{inst}: instance pixel value 40xxx has label id 40 (unknown), ') + '.*'
    if case == 'unreadable image':
        path = osp.join(root, 'leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png')
        with open(path, 'w') as f:
            f.write('not a png')
        return re.escape(f'{path}: cannot read the image (empty, or not an image format PIL knows)')
    raise KeyError(case)


@pytest.mark.parametrize('case', [
    'missing label map', 'missing image', 'missing gtFine folder', 'empty label map', 'truncated label map',
    'RGB label map', 'label map of another size', 'unknown class', 'unreadable image'
])
def test_cityscapes_bad_input_is_one_line_naming_the_file(cs_tree, capsys, case):
    expected = damage_cityscapes(cs_tree, case)
    message = error_line(capsys, cs.main, [cs_tree])
    assert re.fullmatch(expected, message), message


def test_cityscapes_missing_root_and_splits_without_train(tmp_path, capsys):
    missing = tmp_path / 'nowhere'
    assert error_line(capsys, cs.main, [missing]) == f'{missing} does not exist (expected the Cityscapes root)'
    assert error_line(capsys, cs.main, [missing, '--splits', 'val']) == "--splits must include train, got ['val']"


def test_cityscapes_script_prints_no_traceback(cs_tree):
    path = osp.join(cs_tree, f'{BREMEN_GT}_gtFine_instanceIds.png')
    truncate(path, 0.5)
    proc = run_script('dataset_converters/cityscapes.py', cs_tree)
    assert 'Traceback' not in proc.stderr and proc.returncode == 2, proc.stderr[-3000:]
    assert re.fullmatch(
        re.escape(f'cityscapes.py: error: {path}: cannot read the label map (') + r'.*\)\n', proc.stderr), proc.stderr


def test_cityscapes_bug_keeps_its_traceback(cs_tree, monkeypatch):

    def broken(*args, **kwargs):
        raise ValueError('a bug')

    monkeypatch.setattr(cs, 'instances_from_instance_ids', broken)
    with pytest.raises(ValueError, match='a bug'):
        cs.main([cs_tree])


# -------------------------------------------------------------------------------------- make_partial_split
@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / 'train.json'
    data_list = [dict(img_path=f'img_{i}.png', labeled_tasks=['det', 'seg']) for i in range(8)]
    path.write_text(json.dumps(dict(metainfo=dict(classes=['car']), data_list=data_list), indent=1))
    return str(path)


def test_make_partial_split_truncated_file_is_one_line_with_line_and_column(ann_file, tmp_path):
    cut, line, col = cut_json(open(ann_file).read(), '"labeled_tasks"')
    with open(ann_file, 'w') as f:
        f.write(cut)
    out = tmp_path / 'split.json'
    proc = run_script('make_partial_split.py', ann_file, '--scenario', 'b', '--n-det', '2', '-o', out)
    assert_script_error(proc, 'make_partial_split.py',
                        f'{ann_file}:{line}:{col}: invalid JSON: Expecting property name enclosed in double quotes')
    assert not out.exists()


@pytest.mark.parametrize('content, expected', [
    (None, '{path}: annotation file does not exist'),
    ('[1, 2]', '{path}: expected {{"metainfo": ..., "data_list": [...]}}'),
    ('{"data_list": [3]}', '{path}: an entry has no img_path (a string) or labeled_tasks (a list of task names): 3'),
    ('{"data_list": [{"img_path": "a.png", "labeled_tasks": "det"}]}',
     "{path}: an entry has no img_path (a string) or labeled_tasks (a list of task names): "
     "{{'img_path': 'a.png', 'labeled_tasks': 'det'}}"),
    ('{"data_list": [{"img_path": "a.png", "labeled_tasks": ["det", "seg"]}]}',
     '{path}: --n-det/--n-seg=2 but only 1 images are labeled for both tasks'),
])
def test_make_partial_split_bad_file_is_one_line_naming_it(tmp_path, capsys, content, expected):
    path = tmp_path / 'train.json'
    if content is not None:
        path.write_text(content)
    message = error_line(capsys, mps.main, [path, '--scenario', 'b', '--n-det', '2', '-o', tmp_path / 'x.json'])
    assert message == expected.format(path=path)
    assert not (tmp_path / 'x.json').exists()


# ---------------------------------------------------------------------------------------------- analysis
ANALYSIS_TOOLS = ['analysis/confusion_matrix.py', 'analysis/analyze_results.py']


def bad_pickles(tmp_path):
    """(file, expected message) for pickles the analysis tools cannot use."""
    preds = [dict(img_path=f'img_{i}.png', pred_instances=dict(bboxes=torch.zeros(2, 4))) for i in range(4)]
    good = pickle.dumps(preds)
    cases = []
    for name, data, what in (('empty.pkl', b'', 'cannot read the predictions pickle (EOFError: '),
                             ('truncated.pkl', good[:len(good) // 2], 'cannot read the predictions pickle ('),
                             ('text.pkl', b'hello, this is not a pickle', 'cannot read the predictions pickle ('),
                             ('dict.pkl', pickle.dumps(dict(a=1)), 'expected a list of per-image dicts')):
        path = tmp_path / name
        path.write_bytes(data)
        cases.append((path, re.escape(f'{path}: {what}') + '.*'))
    missing = tmp_path / 'missing.pkl'
    cases.append((missing, re.escape(f'{missing} does not exist (the predictions pickle)')))
    return cases


@pytest.mark.parametrize('tool', ANALYSIS_TOOLS)
def test_analysis_tools_bad_pickle_is_one_line_naming_it(tool, tmp_path, capsys):
    main = load_tool(tool).main
    for path, expected in bad_pickles(tmp_path):
        message = error_line(capsys, main, [TINY_CONFIG, path, tmp_path / 'out'])
        assert re.fullmatch(expected, message), message
    missing = tmp_path / 'nope.py'
    assert error_line(
        capsys, main,
        [missing, tmp_path / 'missing.pkl', tmp_path / 'out']) == (f'{missing} does not exist (the config file)')
    assert not (tmp_path / 'out').exists()


def test_analysis_predictions_of_other_images_are_one_line(partial_root, tmp_path, capsys):
    from fixtures import cfg_options
    path = tmp_path / 'other.pkl'
    path.write_bytes(pickle.dumps([dict(img_path='elsewhere.png')]))
    message = error_line(capsys,
                         load_tool(ANALYSIS_TOOLS[0]).main,
                         [TINY_CONFIG, path, tmp_path / 'out', '--cfg-options', *cfg_options(partial_root)])
    assert message.startswith(f"{path}: 1 predicted images are not in the dataset, e.g. ['elsewhere.png']"), message


def test_analysis_script_prints_no_traceback(tmp_path):
    path = tmp_path / 'truncated.pkl'
    path.write_bytes(pickle.dumps([dict(img_path='a.png')])[:10])
    proc = run_script(ANALYSIS_TOOLS[0], TINY_CONFIG, path, tmp_path / 'out')
    assert 'Traceback' not in proc.stderr and proc.returncode == 2, proc.stderr[-3000:]
    assert re.fullmatch(
        re.escape(f'confusion_matrix.py: error: {path}: cannot read the predictions pickle (') + r'.*\)\n',
        proc.stderr), proc.stderr


# ------------------------------------------------------------------------------------------ export_teacher
def test_export_teacher_unreadable_checkpoint_is_one_line(tmp_path, capsys):
    tool = load_tool('export_teacher.py')
    ckpt = tmp_path / 'semi.pth'
    torch.save(dict(state_dict={'student.w': torch.zeros(256), 'teacher.w': torch.zeros(256)}), ckpt)
    data = ckpt.read_bytes()
    for name, content in (('truncated.pth', data[:len(data) // 2]), ('empty.pth', b''), ('text.pth', b'hello')):
        path = tmp_path / name
        path.write_bytes(content)
        capsys.readouterr()
        assert tool.main([str(path), str(tmp_path / 'out.pth')]) == 2
        err = capsys.readouterr().err
        assert re.fullmatch(
            re.escape(f'export_teacher.py: error: {path}: cannot read the checkpoint (') +
            r'.*\): truncated, or not a file written by torch.save\n', err), err
    assert not (tmp_path / 'out.pth').exists()
    path = tmp_path / 'truncated.pth'
    proc = run_script('export_teacher.py', path, tmp_path / 'out.pth')
    assert 'Traceback' not in proc.stderr and proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith(f'export_teacher.py: error: {path}: cannot read the checkpoint (')
    assert proc.stderr.count('\n') == 1, proc.stderr


# ------------------------------------------------------------------------------------------ synthetic sets
@pytest.mark.parametrize('tool, args, expected', [
    ('synthetic_bdd100k.py', ['--size', '1280'], "--size: expected WIDTHxHEIGHT (e.g. 1280x720), got '1280'"),
    ('synthetic_bdd100k.py', ['--size', '30x100'], '--size 30x100: too small for the scene: the height must be at '
     'least 12 and the width more than 38 (the widest car)'),
    ('synthetic_bdd100k.py', ['--num-val', '-1'], '--num-val must be >= 0, got -1'),
    ('synthetic_cityscapes.py', ['--height', '0'], '--height must be >= 1, got 0'),
    ('synthetic_cityscapes.py', ['--num-train', '-1'], '--num-train must be >= 0, got -1'),
])
def test_synthetic_sets_bad_options_are_one_line(tool, args, expected, tmp_path, capsys):
    root = tmp_path / 'out'
    assert error_line(capsys, load_tool(tool).main, [root, *args]) == expected
    assert not root.exists(), 'nothing written'
