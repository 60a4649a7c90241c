"""Mini-batch samplers. Implicit sampling (uniform over all samples) is mmengine's ``InfiniteSampler``."""
from .explicit_sampler import ExplicitSampler, check_dataloader_cfg, labeled_pools

__all__ = ['ExplicitSampler', 'check_dataloader_cfg', 'labeled_pools']
