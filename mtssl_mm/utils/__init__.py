from .checkpoint import load_from_local, patch_checkpoint_loader
from .dist import setup_cpu_distributed
from .profiling import SectionTimer, section

__all__ = ['load_from_local', 'patch_checkpoint_loader', 'setup_cpu_distributed', 'SectionTimer', 'section']
