"""README.md and docs/*.md: links resolve inside the repository, anchors name headings, no outside links, README
stays a front door (at most 200 lines), no commit hashes, and the paths and flags the pages name exist.

No network. Each check is a function returning its problems; the ``*_catches_*`` tests feed it a broken page so
that every assertion is known to be able to fail.
"""
import glob
import os
import os.path as osp
import re
from typing import Dict, Iterator, List, Tuple
from urllib.parse import unquote

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
README_MAX_LINES = 200

FENCE = re.compile(r'^\s*(```|~~~)')
HEADING = re.compile(r'^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
CODE_SPAN = re.compile(r'(`+)(.+?)\1')
# [text](target "title") and ![alt](target); the text may hold escaped brackets and code spans
LINK = re.compile(r'!?\[(?:[^\[\]\\]|\\.|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:"[^"]*"|\'[^\']*\'))?\s*\)')
REF_DEF = re.compile(r'^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$')
SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')
BARE_URL = re.compile(r'(?:https?|ftp)://|www\.', re.IGNORECASE)
# 7 to 40 hex digits with at least one digit and one letter: what a (short) commit hash looks like, not an
# English word ("defaced") or a plain number
HEX_TOKEN = re.compile(r'(?<![0-9A-Za-z_])(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,40}'
                       r'(?![0-9A-Za-z_])')
REPO_PATH = re.compile(r'^(?:tools|configs|mtssl_mm|tests|requirements|docs)/')
FLAG = re.compile(r'(?<![\w-])(--[a-z][a-z0-9_-]*)')
# flags of other programs that the pages name (pip, pytest, TensorBoard)
EXTERNAL_FLAGS = {'--logdir', '--dist', '--no-build-isolation', '--no-deps'}


def doc_files(repo: str = REPO) -> List[str]:
    """README.md and every markdown file under docs/, as paths relative to ``repo``."""
    files = ['README.md'] + sorted(
        osp.relpath(p, repo) for p in glob.glob(osp.join(repo, 'docs', '**', '*.md'), recursive=True))
    return [f for f in files if osp.isfile(osp.join(repo, f))]


def read(repo: str, rel: str) -> str:
    with open(osp.join(repo, rel), encoding='utf-8') as f:
        return f.read()


def prose_lines(text: str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` outside fenced code blocks, code spans removed."""
    fenced = False
    for no, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield no, CODE_SPAN.sub('', line)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text (links -> their text, no code-span backticks, escapes
    resolved), lowercased, punctuation dropped except ``-`` and ``_`` (letters, digits and spaces kept), spaces ->
    ``-``."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)
    text = text.replace('`', '')
    text = re.sub(r'\\(.)', r'\1', text)
    text = text.strip().lower()
    text = ''.join(c for c in text if c.isalnum() or c in ' -_')
    return text.replace(' ', '-')


def anchors(text: str) -> set:
    """The anchors of every heading of a markdown text (outside code blocks), duplicates numbered as GitHub does."""
    seen: Dict[str, int] = {}
    out = set()
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        out.add(base if n == 0 else f'{base}-{n}')
        seen[base] = n + 1
    return out


def links(text: str) -> Iterator[Tuple[int, str]]:
    """``(line number, target)`` of every markdown link, image and reference definition outside code."""
    for no, line in prose_lines(text):
        for m in LINK.finditer(line):
            yield no, m.group(1)
        m = REF_DEF.match(line)
        if m:
            yield no, m.group(1)


def link_problems(repo: str, files: List[str]) -> List[str]:
    """Links that leave the repository, point at nothing, or name an anchor the target file lacks."""
    problems = []
    root = osp.realpath(repo)
    for rel in files:
        text = read(repo, rel)
        for no, target in links(text):
            where = f'{rel}:{no}: {target!r}'
            if not target:
                problems.append(f'{where}: empty link')
                continue
            if SCHEME.match(target) or target.startswith('//'):
                problems.append(f'{where}: points outside the repository (name external projects in plain text)')
                continue
            path, _, anchor = target.partition('#')
            if path:
                dest = osp.realpath(osp.join(repo, osp.dirname(rel), unquote(path)))
                if dest != root and not dest.startswith(root + os.sep):
                    problems.append(f'{where}: leaves the repository')
                    continue
                if not osp.exists(dest):
                    problems.append(f'{where}: no such file')
                    continue
                dest_rel = osp.relpath(dest, root)
            else:
                dest_rel = rel
            if anchor and dest_rel.endswith('.md') and anchor not in anchors(read(repo, dest_rel)):
                problems.append(f'{where}: {dest_rel} has no heading with the anchor #{anchor} '
                                f'(known: {sorted(anchors(read(repo, dest_rel)))})')
    return problems


def bare_url_problems(repo: str, files: List[str]) -> List[str]:
    """URLs in the prose (GitHub turns them into links), outside code blocks and code spans."""
    return [
        f'{rel}:{no}: {line.strip()}' for rel in files for no, line in prose_lines(read(repo, rel))
        if BARE_URL.search(line)
    ]


def hash_problems(repo: str, files: List[str]) -> List[str]:
    """Tokens that look like commit hashes anywhere in the pages, code blocks included."""
    return [
        f'{rel}:{no}: {m.group(0)}' for rel in files for no, line in enumerate(read(repo, rel).splitlines(), 1)
        for m in HEX_TOKEN.finditer(line)
    ]


def readme_length_problems(repo: str) -> List[str]:
    n = len(read(repo, 'README.md').splitlines())
    return [f'README.md has {n} lines, more than {README_MAX_LINES}: move the detail into docs/'] \
        if n > README_MAX_LINES else []


def path_problems(repo: str, files: List[str]) -> List[str]:
    """Repository paths named in code spans (``tools/...``, ``configs/...``, ...) that do not exist; patterns
    (braces, brackets, ``*``, ``<...>``, ``...``) are not checked."""
    problems = []
    for rel in files:
        for no, line in enumerate(read(repo, rel).splitlines(), 1):
            for span in CODE_SPAN.finditer(line):
                for token in re.split(r'[\s,;=]+', span.group(2)):
                    token = token.strip('()\'"')
                    if REPO_PATH.match(token) and not re.search(r'[{}\[\]*<>]|\.\.\.|…', token) \
                            and not osp.exists(osp.join(repo, token)):
                        problems.append(f'{rel}:{no}: {token} does not exist')
    return problems


def flag_problems(repo: str, files: List[str]) -> List[str]:
    """Command-line flags named in the pages that no tool of the repository defines (as a quoted string in
    ``tools/`` or ``mtssl_mm/``); flags of pip, pytest and TensorBoard are known."""
    sources = [
        p for pattern in ('tools/**/*.py', 'tools/*.sh', 'mtssl_mm/**/*.py')
        for p in glob.glob(osp.join(repo, pattern), recursive=True)
    ]
    code = ''
    for path in sources:
        with open(path, encoding='utf-8') as f:
            code += f.read()
    problems = []
    for rel in files:
        for no, line in enumerate(read(repo, rel).splitlines(), 1):
            for flag in FLAG.findall(line):
                if flag not in EXTERNAL_FLAGS and f"'{flag}'" not in code and f'"{flag}"' not in code:
                    problems.append(f'{rel}:{no}: {flag} is not a flag of any tool')
    return problems


# the pages whose flags are this repository's tools' (install.md and cuda.md quote pip's)
FLAG_PAGES = ('README.md', 'docs/tools.md', 'docs/benchmark.md', 'docs/data.md', 'docs/reproduce.md', 'docs/demo.md',
              'docs/label_count_study.md', 'docs/method.md', 'docs/add_a_task.md')


# ------------------------------------------------------------------------------------------ the real pages
def test_the_pages_exist():
    files = doc_files()
    for page in ('README.md', 'docs/install.md', 'docs/data.md', 'docs/method.md', 'docs/add_a_task.md',
                 'docs/reproduce.md', 'docs/tools.md', 'docs/benchmark.md', 'docs/demo.md', 'docs/label_count_study.md',
                 'docs/cuda.md'):
        assert page in files, page


def test_every_relative_link_and_anchor_resolves_and_none_leaves_the_repo():
    problems = link_problems(REPO, doc_files())
    assert not problems, '\n'.join(problems)


def test_no_bare_urls():
    problems = bare_url_problems(REPO, doc_files())
    assert not problems, '\n'.join(problems)


def test_readme_is_at_most_200_lines():
    problems = readme_length_problems(REPO)
    assert not problems, problems


def test_no_commit_hashes():
    problems = hash_problems(REPO, doc_files())
    assert not problems, '\n'.join(problems)


def test_named_repository_paths_exist():
    problems = path_problems(REPO, doc_files())
    assert not problems, '\n'.join(problems)


def test_named_flags_are_real():
    problems = flag_problems(REPO, [f for f in FLAG_PAGES if f in doc_files()])
    assert not problems, '\n'.join(problems)


def test_quick_start_targets_exist_in_the_makefile():
    readme = read(REPO, 'README.md')
    makefile = read(REPO, 'Makefile')
    named = set(re.findall(r'^make (\w[\w-]*)', readme, re.MULTILINE))
    assert {'test', 'demo'} <= named, named
    for target in named:
        assert re.search(rf'^{re.escape(target)}:', makefile, re.MULTILINE), f'make {target}: no such target'


# ------------------------------------------------------------------------------------------ the checks fail
@pytest.fixture
def broken_repo(tmp_path):
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'tools').mkdir()
    (tmp_path / 'tools' / 'train.py').write_text("parser.add_argument('--work-dir')\n")
    (tmp_path / 'docs' / 'a.md').write_text('# Page A\n\n## Low-data splits (section 4.1)\n\n## Same\n\n## Same\n')
    return tmp_path


def write_readme(repo, text):
    (repo / 'README.md').write_text(text)
    return ['README.md', 'docs/a.md']


def test_slug_follows_github():
    assert slug('Low-data splits (section 4.1)') == 'low-data-splits-section-41'
    assert slug('`make demo`: the method end to end') == 'make-demo-the-method-end-to-end'
    assert slug('FixMatch\\* and Dense FixMatch') == 'fixmatch-and-dense-fixmatch'
    assert slug('The model (`MultiTaskModel`)') == 'the-model-multitaskmodel'
    assert anchors('# Same\n```\n# not a heading\n```\n# Same\n') == {'same', 'same-1'}


def test_link_check_catches_a_missing_file_a_bad_anchor_and_an_outside_link(broken_repo):
    page = ('[ok](docs/a.md#low-data-splits-section-41) [dup](docs/a.md#same-1)\n'
            '![img](docs/missing.png)\n'
            '[anchor](docs/a.md#no-such-heading)\n'
            '[web](https://example.org/x)\n'
            '[up](../outside.md)\n'
            '[self](#nowhere)\n'
            '`[in code](docs/missing.md)`\n'
            '```\n[in a block](docs/missing.md)\n```\n')
    files = write_readme(broken_repo, page)
    problems = link_problems(str(broken_repo), files)
    assert len(problems) == 5, problems
    assert 'missing.png' in problems[0] and 'no such file' in problems[0]
    assert '#no-such-heading' in problems[1]
    assert 'outside the repository' in problems[2]
    assert 'leaves the repository' in problems[3]
    assert '#nowhere' in problems[4]


def test_url_check_catches_a_bare_url(broken_repo):
    files = write_readme(broken_repo, 'see https://example.org and `https://in.code`\n')
    assert len(bare_url_problems(str(broken_repo), files)) == 1


def test_length_check_catches_a_long_readme(broken_repo):
    write_readme(broken_repo, 'line\n' * (README_MAX_LINES + 1))
    assert readme_length_problems(str(broken_repo))
    write_readme(broken_repo, 'line\n' * README_MAX_LINES)
    assert not readme_length_problems(str(broken_repo))


def test_hash_check_catches_short_and_full_hashes_but_not_words_or_numbers(broken_repo):
    page = 'commit 2c7a0ca, defaced 1234567 2,690 s 1e-3\n```\ngit show 93e3f24a1b2c3d4e5f60718293a4b5c6d7e8f901\n```\n'
    files = write_readme(broken_repo, page)
    problems = hash_problems(str(broken_repo), files)
    assert [p.split(': ')[-1] for p in problems] == ['2c7a0ca', '93e3f24a1b2c3d4e5f60718293a4b5c6d7e8f901']


def test_path_and_flag_checks_catch_what_does_not_exist(broken_repo):
    page = '`tools/train.py --work-dir` `tools/gone.py` `configs/{a,b}.py`\npython tools/train.py --no-such-flag\n'
    files = write_readme(broken_repo, page)
    assert [p.split(': ')[-1] for p in path_problems(str(broken_repo), files)] == ['tools/gone.py does not exist']
    assert [p.split(': ')[-1] for p in flag_problems(str(broken_repo), files)] == \
        ['--no-such-flag is not a flag of any tool']
