import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault('OMP_NUM_THREADS', '1')

from mmengine.registry import init_default_scope  # noqa: E402

# components are built outside a Runner in unit tests: look them up in mmdet's scope, as configs do
init_default_scope('mmdet')

PARTIAL = [('det', 'seg'), ('det', ), ('seg', ), (), ('det', 'seg'), ('det', )]


@pytest.fixture(scope='module')
def partial_root(tmp_path_factory):
    """A train split with every mix of labels and a val split labeled for both tasks."""
    from fixtures import write_dataset
    root = str(tmp_path_factory.mktemp('data'))
    write_dataset(root, PARTIAL, split='train', seed=0)
    write_dataset(root, [('det', 'seg'), ('det', ), ('seg', )], split='val', seed=1)
    return root
