from .multitask_detseg import MultiTaskDetSeg

__all__ = ['MultiTaskDetSeg']
