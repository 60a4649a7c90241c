"""tools/gpu_wheelhouse.sh, tools/gpu_check.sh and their package list, offline: syntax, the list, the checker."""
import os.path as osp
import re
import subprocess
import tarfile
import zipfile

import pytest

from official_fixtures import REPO, load_tool

check = load_tool('gpu_wheelhouse_check.py')
report = load_tool('gpu_check_report.py')
SCRIPTS = ['tools/gpu_check.sh', 'tools/gpu_wheelhouse.sh']


def read(rel):
    with open(osp.join(REPO, rel)) as f:
        return f.read()


@pytest.mark.parametrize('script', SCRIPTS)
def test_script_parses(script):
    proc = subprocess.run(['bash', '-n', osp.join(REPO, script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_list_has_one_pinned_version_per_package_and_the_mmcv_sdist():
    listed = check.read_list()
    names = [name for name, _, _ in listed]
    assert len(names) == len(set(names)), f'a package listed twice: {names}'
    assert [(name, version) for name, version, kind in listed if kind == 'sdist'] == [('mmcv', '2.1.0')]


def test_list_pins_the_versions_the_cpu_install_pins():
    listed = {name: version for name, version, _ in check.read_list()}
    pins = {}
    for rel in ('requirements/mmcv_deps.txt', 'requirements/runtime.txt'):
        for req in check.read_project([osp.join(REPO, rel)]):
            pinned = [s.version for s in req.specifier if s.operator == '==']
            if pinned:
                pins[check.canonicalize_name(req.name)] = pinned[0]
    for name, version in re.findall(r'\b(mmcv|mmdet|mmsegmentation)==([\d.]+)', read('requirements/install.sh')):
        pins[name] = version
    assert {'mmcv', 'mmdet', 'mmsegmentation', 'mmengine', 'kornia', 'pycocotools'} <= set(pins)
    for name, version in pins.items():
        if name in listed:
            assert listed[name] == version, f'{name}: {listed[name]} in the GPU list, {version} in the CPU install'


def test_both_scripts_use_the_list_and_gpu_check_installs_what_it_names():
    for script in SCRIPTS:
        assert re.search(r'^(export )?LIST=requirements/gpu_wheelhouse\.txt\b', read(script), re.M), script
    assert check.LIST == osp.join(REPO, 'requirements', 'gpu_wheelhouse.txt')
    gpu_check = read('tools/gpu_check.sh')
    assert 'gpu_wheelhouse_check.py "$WHEELHOUSE" --list "$LIST" --print wheels' in gpu_check
    assert 'gpu_wheelhouse_check.py "$WHEELHOUSE" --list "$LIST" --print sdists' in gpu_check
    # the build the issue prescribes: sm_90 only, no index, no build isolation
    assert 'FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16}' in gpu_check
    assert '--no-build-isolation --no-index' in gpu_check


def test_wheelhouse_folder_is_ignored_by_git():
    proc = subprocess.run(['git', 'check-ignore', '-q', '.whl/mmdet-3.3.0-py3-none-any.whl'], cwd=REPO)
    if proc.returncode == 128:
        pytest.skip('not a git work tree')
    assert proc.returncode == 0, '.whl/ is not ignored: the wheelhouse would be committed'


# ------------------------------------------------------------------------------------ the checker, made-up files
def wheel(folder, fname, requires=()):
    name, version = fname.split('-')[:2]
    with zipfile.ZipFile(folder / fname, 'w') as z:
        meta = f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n' + ''.join(f'Requires-Dist: {r}\n'
                                                                                      for r in requires)
        z.writestr(f'{name}-{version}.dist-info/METADATA', meta)


def sdist(folder, fname, requires_txt):
    import io
    stem = fname[:-len('.tar.gz')]
    with tarfile.open(folder / fname, 'w:gz') as t:
        data = requires_txt.encode()
        info = tarfile.TarInfo(f'{stem}/{stem.split("-")[0]}.egg-info/requires.txt')
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))


@pytest.fixture
def made_up(tmp_path):
    (tmp_path / 'list.txt').write_text('foo==1.0\nbar_baz==2.0\nsrc==0.1  # sdist\n')
    (tmp_path / 'image.txt').write_text('numpy==2.5.2\nmatplotlib\nopencv-python-headless\n')
    house = tmp_path / 'house'
    house.mkdir()
    foo_requires = ['bar-baz>=2', 'numpy>=1.26', 'tomli; python_version < "3.11"', 'pytest; extra == "test"']
    wheel(house, 'foo-1.0-py3-none-any.whl', foo_requires)
    wheel(house, 'bar_baz-2.0-cp312-cp312-manylinux_2_17_x86_64.whl', ['matplotlib', 'opencv-python>=3', 'typing'])
    sdist(house, 'src-0.1.tar.gz', 'foo\n\n[:sys_platform == "win32"]\nqux\n\n[docs]\nsphinx\n')
    return tmp_path, house


def run_check(tmp_path, house):
    return check.check(
        str(house), list_path=str(tmp_path / 'list.txt'), image_path=str(tmp_path / 'image.txt'), project=[])


def test_checker_accepts_a_complete_made_up_wheelhouse(made_up):
    tmp_path, house = made_up
    lines, problems = run_check(tmp_path, house)
    assert problems == []
    assert any('opencv-python>=3 <- image as opencv-python-headless' in line for line in lines)
    assert any('typing <- Python 3.12 standard library' in line for line in lines)
    assert not any('tomli' in line or 'pytest' in line or 'qux' in line or 'sphinx' in line for line in lines)


def test_checker_names_each_problem(made_up):
    tmp_path, house = made_up
    wheel(house, 'foo-1.0-py3-none-any.whl', ['numpy>=3', 'missing-pkg'])  # rewritten
    wheel(house, 'bar_baz-2.1-py3-none-any.whl')  # a second version of a listed package
    wheel(house, 'extra-1.0-py3-none-any.whl')  # not listed
    wheel(house, 'src-0.1-cp311-cp311-manylinux_2_17_x86_64.whl')  # a prebuilt wheel for another Python
    (house / 'src-0.1.tar.gz').unlink()
    _, problems = run_check(tmp_path, house)
    text = '\n'.join(problems)
    assert 'numpy>=3: image 2.5.2 (does not satisfy >=3)' in text
    assert 'missing-pkg: MISSING' in text
    assert 'bar_baz-2.1-py3-none-any.whl: version 2.1, the list pins bar-baz==2.0' in text
    assert 'extra-1.0-py3-none-any.whl: extra is not in' in text
    assert 'src-0.1-cp311' in text and 'no tag of it installs on CPython 3.12' in text
    assert 'src==0.1: no sdist in' in text


@pytest.mark.parametrize('line', ['foo>=1.0', 'foo', 'foo==1.0,<2'])
def test_list_lines_must_pin_one_version(tmp_path, line):
    (tmp_path / 'list.txt').write_text(line + '\n')
    with pytest.raises(ValueError, match='expected name==version'):
        check.read_list(str(tmp_path / 'list.txt'))


def test_report_reads_pytest_junit_counts(tmp_path):
    xml = tmp_path / 'j.xml'
    xml.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1"><testcase name="a"/>'
                   '<testcase name="b"><failure message="boom"/></testcase><testcase name="c"><skipped/></testcase>'
                   '</testsuite></testsuites>')
    assert report.junit(str(xml)) == dict(
        tests=3, passed=1, failed=1, errors=0, skipped=1, failures=['b: failure: boom'])
