from .checkpoint import UnsafeCheckpointError, load_from_local, patch_checkpoint_loader, safe_torch_load
from .dist import setup_cpu_distributed
from .profiling import SectionTimer, section

__all__ = [
    'load_from_local', 'patch_checkpoint_loader', 'safe_torch_load', 'UnsafeCheckpointError', 'setup_cpu_distributed',
    'SectionTimer', 'section'
]
