"""setup.py's install_requires and extras cover what requirements/ pins, with ranges that contain the pins.

CI installs with requirements/install.sh (exact pins, this package with --no-deps); `pip install -e .` in an existing
OpenMMLab environment reads setup.py. A requirement added to requirements/ but not to setup.py fails here.
"""
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fixtures import REPO

REQ = osp.join(REPO, 'requirements')
# install.sh step 1 installs these to build mmcv and this package; nothing imports them at run time
BUILD_TOOLS = {'pip', 'setuptools', 'wheel', 'ninja'}
# setup.py keeps an installed headless OpenCV instead of opencv-python (mmcv's rule)
ALTERNATIVES = {'opencv-python': {'opencv-python', 'opencv-python-headless'}}


def read_requirements(path):
    """Requirements of a pip requirements file, following ``-r`` includes."""
    reqs = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith(('-r ', '--requirement ')):
                reqs += read_requirements(osp.join(osp.dirname(path), line.split(None, 1)[1]))
            elif line.startswith('-'):
                raise ValueError(f'{path}: option line {line!r} not understood by this test')
            else:
                reqs.append(Requirement(line))
    return reqs


def install_sh_pins():
    """The requirements install.sh names itself: TORCH_SPEC's default and the arguments of its pip installs."""
    with open(osp.join(REQ, 'install.sh'), encoding='utf-8') as f:
        text = f.read()
    reqs = [Requirement(m) for m in re.findall(r'TORCH_SPEC:-([^}]+)\}', text)]
    for line in text.splitlines():
        if '$PIP install' not in line:
            continue
        words = shlex.split(line.split('$PIP install', 1)[1].split('#', 1)[0])
        skip = False
        for word in words:
            if skip:
                skip = False
            elif word in ('-r', '-e', '-c'):
                skip = True
            elif not word.startswith(('-', '$', '\\')) and word != '.':
                reqs.append(Requirement(word))
    return reqs


def setup_requirements(tmp_path):
    """``(install_requires, extras)`` from ``python setup.py egg_info`` (what pip reads)."""
    subprocess.run([sys.executable, 'setup.py', '--quiet', 'egg_info', '--egg-base',
                    str(tmp_path)],
                   cwd=REPO,
                   check=True,
                   capture_output=True,
                   text=True)
    with open(osp.join(tmp_path, 'mtssl_mm.egg-info', 'requires.txt'), encoding='utf-8') as f:
        base, extras, section = [], {}, None
        for line in f.read().splitlines():
            if not line.strip():
                continue
            if line.startswith('['):
                section = line.strip('[]')
                extras[section] = []
            else:
                (base if section is None else extras[section]).append(Requirement(line))
    return base, extras


def problems(pinned, declared):
    """What ``declared`` (setup.py's list) lacks from ``pinned``: a name missing, or a range that excludes the
    version a pin (``==``, ``>=``, ``~=``) names. Empty when everything is covered."""
    by_name = {canonicalize_name(r.name): r for r in declared}
    out = []
    for req in pinned:
        name = canonicalize_name(req.name)
        found = [by_name[n] for n in sorted(ALTERNATIVES.get(name, {name})) if n in by_name]
        if not found:
            out.append(f'{req}: not in setup.py')
            continue
        for spec in req.specifier:
            if spec.operator in ('==', '>=', '~=', '===') and not found[0].specifier.contains(
                    spec.version, prereleases=True):
                out.append(f'{req}: setup.py has {found[0]}, which excludes {spec.version}')
    return out


@pytest.fixture(scope='module')
def declared(tmp_path_factory):
    return setup_requirements(tmp_path_factory.mktemp('egg'))


def test_install_requires_cover_requirements_and_install_sh(declared):
    base, _ = declared
    pins = install_sh_pins()
    names = {canonicalize_name(r.name) for r in pins}
    # the parse found what install.sh installs (so an empty parse cannot pass), build tools aside
    assert {'torch', 'mmcv', 'mmdet', 'mmsegmentation'} | BUILD_TOOLS <= names, names
    assert str(next(r for r in pins if r.name == 'torch').specifier) == '==2.13.0'
    runtime = [r for r in pins if canonicalize_name(r.name) not in BUILD_TOOLS]
    runtime += read_requirements(osp.join(REQ, 'runtime.txt')) + read_requirements(osp.join(REQ, 'mmcv_deps.txt'))
    assert problems(runtime, base) == []
    assert not {canonicalize_name(r.name) for r in base} & BUILD_TOOLS


def test_extras_cover_deploy_and_tests_requirements(declared):
    _, extras = declared
    deploy = read_requirements(osp.join(REQ, 'deploy.txt'))
    assert {canonicalize_name(r.name) for r in deploy} == {'onnx', 'onnxruntime', 'onnxscript'}
    assert problems(deploy, extras['deploy']) == []
    assert problems(read_requirements(osp.join(REQ, 'tests.txt')), extras['tests']) == []


def test_install_sh_keeps_its_order():
    """This package is installed without its dependencies: install.sh has already installed them in its order."""
    with open(osp.join(REQ, 'install.sh'), encoding='utf-8') as f:
        assert '$PIP install -q --no-deps --no-build-isolation -e .' in f.read()


def test_the_check_fails_on_a_missing_or_excluded_requirement():
    declared = [Requirement('kornia>=0.9.0,<0.10.0'), Requirement('opencv-python-headless')]
    assert problems([Requirement('kornia==0.9.0'), Requirement('opencv-python')], declared) == []
    assert problems([Requirement('newlib==1.0')], declared) == ['newlib==1.0: not in setup.py']
    assert problems([Requirement('kornia==0.10.1')],
                    declared) == ['kornia==0.10.1: setup.py has kornia<0.10.0,>=0.9.0, which excludes 0.10.1']
