"""Check a GPU wheelhouse against requirements/gpu_wheelhouse.txt: complete, one version each, requirements met.

The wheelhouse (``tools/gpu_wheelhouse.sh DIR``) holds, for the GPU machine (CPython 3.12, Linux x86_64, its own
torch, no package registry), one file per line of the list: a wheel, or the sdist of a line tagged ``# sdist``.
Everything is installed there with ``--no-deps``, so nothing but this check says whether a requirement is missing.
It checks:

* every listed package has exactly one file in ``DIR``, at the pinned version, and ``DIR`` holds nothing else
  (a prebuilt wheel of an sdist line, e.g. an mmcv wheel brought back from a GPU run, is allowed);
* every wheel's tags install on CPython 3.12, manylinux x86_64;
* every ``Requires-Dist`` of every wheel and of the sdist (its ``egg-info/requires.txt``), markers evaluated for
  CPython 3.12 on Linux x86_64, no extras, is met by another package of the list (version checked), by the image
  (``requirements/gpu_image.txt``: version checked where known, else presence only, said so), or by a name the
  image holds under another name (``ALIASES``) or that Python 3.12 itself provides (``STDLIB``);
* so is every requirement of the project's own install files (``requirements/mmcv_deps.txt``, ``runtime.txt``).

With ``--installed`` (on the GPU machine, after the install) requirements are checked against the distributions
the running interpreter sees, with their real versions, instead of ``gpu_image.txt``. ``--print wheels`` (or
``sdists``) prints the paths of the listed files instead, after checking the folder: ``tools/gpu_check.sh``
installs exactly those.

Usage::

    python tools/gpu_wheelhouse_check.py .whl                 # here, after tools/gpu_wheelhouse.sh .whl
    python3 tools/gpu_wheelhouse_check.py .whl --installed    # there, after the install
    python3 tools/gpu_wheelhouse_check.py .whl --print wheels # there, what to install

Exit status 0 when everything is met, 1 otherwise (the report names each problem).
"""
import argparse
import os
import os.path as osp
import sys
import tarfile
import zipfile
from email.parser import Parser
from typing import Dict, List, Optional, Tuple

try:
    from packaging import tags
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # pip always vendors it
    from pip._vendor.packaging import tags  # type: ignore
    from pip._vendor.packaging.markers import default_environment  # type: ignore
    from pip._vendor.packaging.requirements import Requirement  # type: ignore
    from pip._vendor.packaging.utils import parse_sdist_filename  # type: ignore
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
    from pip._vendor.packaging.version import Version  # type: ignore

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LIST = osp.join(REPO, 'requirements', 'gpu_wheelhouse.txt')
IMAGE = osp.join(REPO, 'requirements', 'gpu_image.txt')
PROJECT = [osp.join(REPO, 'requirements', f) for f in ('mmcv_deps.txt', 'runtime.txt')]
PYTHON = (3, 12)
# manylinux platforms a CPython 3.12 x86_64 Linux with a recent glibc installs (the image runs Python 3.12.3)
PLATFORMS = [f'manylinux_2_{n}_x86_64' for n in range(39, 4, -1)
             ] + ['manylinux2014_x86_64', 'manylinux2010_x86_64', 'manylinux1_x86_64', 'linux_x86_64']
# declared under one name, installed under another on the image: the same import (cv2)
ALIASES = {'opencv-python': 'opencv-python-headless'}
# PyPI backports of modules that Python 3.12 has itself (cityscapesscripts declares ``typing``)
STDLIB = {'typing'}


def target_environment() -> Dict[str, str]:
    """Marker variables of the GPU machine's interpreter (CPython 3.12 on Linux x86_64), no extra."""
    env = dict(default_environment())
    env.update(
        python_version='3.12',
        python_full_version='3.12.3',
        implementation_name='cpython',
        implementation_version='3.12.3',
        platform_python_implementation='CPython',
        sys_platform='linux',
        platform_system='Linux',
        platform_machine='x86_64',
        os_name='posix',
        extra='')
    return env


def supported_tags() -> set:
    return set(tags.cpython_tags(PYTHON, abis=['cp312', 'abi3', 'none'], platforms=PLATFORMS)) | set(
        tags.compatible_tags(PYTHON, interpreter='cp312', platforms=PLATFORMS))


def read_list(path: str = LIST) -> List[Tuple[str, str, str]]:
    """``(canonical name, version, 'wheel' | 'sdist')`` per line; ValueError on a line that is not ``name==ver``."""
    out = []
    with open(path, encoding='utf-8') as f:
        for lineno, raw in enumerate(f, 1):
            spec, _, comment = raw.partition('#')
            spec = spec.strip()
            if not spec:
                continue
            name, sep, version = spec.partition('==')
            if not sep or not name.strip() or not version.strip() or any(c in version for c in '<>=!~,; '):
                raise ValueError(f'{path}:{lineno}: expected name==version, got {spec!r}')
            kind = 'sdist' if comment.strip().startswith('sdist') else 'wheel'
            out.append((canonicalize_name(name.strip()), version.strip(), kind))
    return out


def read_image(path: str = IMAGE) -> Dict[str, Optional[str]]:
    """``{canonical name: version or None}`` of ``gpu_image.txt``."""
    out = {}
    with open(path, encoding='utf-8') as f:
        for raw in f:
            spec = raw.partition('#')[0].strip()
            if spec:
                name, _, version = spec.partition('==')
                out[canonicalize_name(name.strip())] = version.strip() or None
    return out


def read_project(paths: List[str] = PROJECT) -> List[Requirement]:
    reqs = []
    for path in paths:
        with open(path, encoding='utf-8') as f:
            for raw in f:
                spec = raw.partition('#')[0].strip()
                if spec and not spec.startswith('-'):
                    reqs.append(Requirement(spec))
    return reqs


def wheel_requires(path: str) -> List[str]:
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA') and n.count('/') == 1)
        return Parser().parsestr(z.read(meta).decode('utf-8')).get_all('Requires-Dist') or []


def sdist_requires(path: str) -> List[str]:
    """Requirements of an sdist from its ``*.egg-info/requires.txt`` (sections ``[:marker]`` kept, extras not)."""
    with tarfile.open(path) as t:
        member = next((m for m in t.getmembers() if m.name.endswith('.egg-info/requires.txt')), None)
        if member is None:
            raise ValueError(f'{path}: no *.egg-info/requires.txt')
        text = t.extractfile(member).read().decode('utf-8')
    out, marker = [], ''
    for line in text.splitlines():
        line = line.strip()
        if line.startswith('['):
            extra, _, marker = line[1:-1].partition(':')
            marker = None if extra else marker  # an extra's section: skipped
        elif line and marker is not None:
            out.append(f'{line}; {marker}' if marker else line)
    return out


def scan(folder: str,
         listed: List[Tuple[str, str, str]],
         list_path: str = LIST) -> Tuple[Dict[str, Tuple[str, str]], List[str]]:
    """``{name: (version, path)}`` of the listed files found, and the problems with the folder's files."""
    problems, found = [], {}
    wanted = {name: (version, kind) for name, version, kind in listed}
    supported = supported_tags()
    for fname in sorted(os.listdir(folder)):
        path = osp.join(folder, fname)
        if fname.endswith('.whl'):
            name, version, _, wheel_tags = parse_wheel_filename(fname)
            kind = 'wheel'
        elif fname.endswith('.tar.gz'):
            name, version = parse_sdist_filename(fname)
            kind, wheel_tags = 'sdist', None
        else:
            problems.append(f'{fname}: neither a wheel nor a .tar.gz sdist')
            continue
        if name not in wanted:
            problems.append(f'{fname}: {name} is not in {list_path}')
            continue
        pin, pin_kind = wanted[name]
        if version != Version(pin):
            problems.append(f'{fname}: version {version}, the list pins {name}=={pin}')
            continue
        if kind == 'wheel' and not wheel_tags & supported:
            problems.append(f'{fname}: no tag of it installs on CPython 3.12 manylinux x86_64')
            continue
        if kind == 'wheel' and pin_kind == 'sdist':
            continue  # a prebuilt wheel of an sdist line (mmcv from a GPU run): allowed, not required
        if kind != pin_kind:
            problems.append(f'{fname}: a {kind}, the list wants the {pin_kind}')
            continue
        if name in found:
            problems.append(f'{fname}: a second file of {name} (also {osp.basename(found[name][1])})')
            continue
        found[name] = (str(version), path)
    for name, (pin, kind) in wanted.items():
        if name not in found:
            problems.append(f'{name}=={pin}: no {kind} in {folder}')
    return found, problems


def installed_versions() -> Dict[str, str]:
    from importlib.metadata import distributions
    out = {}
    for dist in distributions():  # first on sys.path wins, as for imports
        out.setdefault(canonicalize_name(dist.metadata['Name'] or ''), dist.version)
    return out


def provider(req: Requirement, house: Dict[str, str], image: Dict[str, Optional[str]],
             image_label: str) -> Tuple[bool, str]:
    """Whether ``req`` is met, and by what."""
    name = canonicalize_name(req.name)
    if name in house:
        ok = req.specifier.contains(house[name], prereleases=True)
        return ok, f'wheelhouse {house[name]}' + ('' if ok else f' (does not satisfy {req.specifier})')
    if name in STDLIB:
        return True, 'Python 3.12 standard library'
    alias = ALIASES.get(name)
    for candidate, label in ((name, image_label), (alias, f'{image_label} as {alias}')):
        if candidate is None or candidate not in image:
            continue
        version = image[candidate]
        if version is None:
            return True, f'{label} (version not known here: presence only)'
        ok = req.specifier.contains(version, prereleases=True)
        return ok, f'{label} {version}' + ('' if ok else f' (does not satisfy {req.specifier})')
    return False, 'MISSING'


def check(folder: str,
          installed: bool = False,
          list_path: str = LIST,
          image_path: str = IMAGE,
          project: Optional[List[str]] = None) -> Tuple[List[str], List[str]]:
    """The report lines and the problems (``project``: the project's requirement files, default ``PROJECT``)."""
    listed = read_list(list_path)
    found, problems = scan(folder, listed, list_path)
    house = {name: version for name, (version, _) in found.items()}
    if installed:
        image, label = installed_versions(), 'installed'
        for name, version in house.items():
            if name != 'mmcv' and image.get(name) != version:
                problems.append(f'{name}: wheelhouse {version}, installed {image.get(name)}')
    else:
        image, label = read_image(image_path), 'image'
    env = target_environment()
    lines = []
    sources = [(osp.basename(path), wheel_requires(path) if path.endswith('.whl') else sdist_requires(path))
               for _, path in sorted(found.values(), key=lambda v: v[1])]
    project = PROJECT if project is None else project
    if project:
        names = ', '.join(osp.relpath(p, REPO) for p in project)
        sources.append((f'the project ({names})', [str(r) for r in read_project(project)]))
    for source, requires in sources:
        for spec in requires:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            ok, by = provider(req, house, image, label)
            lines.append(f'{"ok " if ok else "NO "} {source}: {req.name}{req.specifier} <- {by}')
            if not ok:
                problems.append(f'{source} requires {req}: {by}')
    return lines, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('folder', help='the wheelhouse (tools/gpu_wheelhouse.sh DIR)')
    parser.add_argument(
        '--installed',
        action='store_true',
        help="check requirements against this interpreter's distributions (on the GPU machine)")
    parser.add_argument('--list', default=LIST, help='the package list (default requirements/gpu_wheelhouse.txt)')
    parser.add_argument(
        '--print',
        choices=['wheels', 'sdists'],
        dest='print_kind',
        help='print the paths of the listed wheels (sdists) in the folder instead of a report')
    args = parser.parse_args(argv)
    if args.print_kind:
        listed = read_list(args.list)
        found, problems = scan(args.folder, listed, args.list)
        kind = args.print_kind[:-1]
        for p in problems:
            print(f'PROBLEM: {p}', file=sys.stderr)
        for path in (found[name][1] for name, _, k in listed if k == kind and name in found):
            print(path)
        return 1 if problems else 0
    lines, problems = check(args.folder, args.installed, args.list)
    print('\n'.join(lines))
    size = sum(osp.getsize(osp.join(args.folder, f)) for f in os.listdir(args.folder))
    print(f'{len(os.listdir(args.folder))} files, {size / 2**20:.1f} MiB in {args.folder}')
    for p in problems:
        print(f'PROBLEM: {p}')
    print('wheelhouse complete' if not problems else f'{len(problems)} problem(s)')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
