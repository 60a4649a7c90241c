import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

# components are built outside a Runner in unit tests: look them up in mmdet's scope, as configs do
init_default_scope('mmdet')

CUDA_SKIP_REASON = ('needs a CUDA GPU: torch.cuda.is_available() is False here (run them on a GPU machine: '
                    'pytest -m cuda, or tools/gpu_check.sh OUT)')


def pytest_configure(config):
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU; skipped without one (select with `pytest -m cuda`)')


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, with the reason, where CUDA is not available (CI shows them as skips)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=CUDA_SKIP_REASON)
    for item in items:
        if item.get_closest_marker('cuda') is not None:
            item.add_marker(skip)


PARTIAL = [('det', 'seg'), ('det', ), ('seg', ), (), ('det', 'seg'), ('det', )]


@pytest.fixture(scope='module')
def partial_root(tmp_path_factory):
    """A train split with every mix of labels and a val split labeled for both tasks."""
    from fixtures import write_dataset
    root = str(tmp_path_factory.mktemp('data'))
    write_dataset(root, PARTIAL, split='train', seed=0)
    write_dataset(root, [('det', 'seg'), ('det', ), ('seg', )], split='val', seed=1)
    return root
