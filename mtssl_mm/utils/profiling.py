"""Wall-clock sections of a training step, for tools/benchmark.py."""
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext

import torch


class SectionTimer:
    """Accumulates wall time per named section; synchronises CUDA at section edges so times are real.

    Attach one to a model (``model.timer = SectionTimer(device)``) and the model's code reports its sections
    through :func:`section`; without a timer the sections cost nothing.

    Args:
        device (str | torch.device): The device the timed work runs on.
    """

    def __init__(self, device='cpu') -> None:
        self.cuda = torch.device(device).type == 'cuda'
        self.totals = defaultdict(float)
        self.counts = defaultdict(int)

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextmanager
    def __call__(self, name: str):
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.totals[name] += time.perf_counter() - start
            self.counts[name] += 1

    def reset(self) -> None:
        self.totals.clear()
        self.counts.clear()


def section(owner, name: str):
    """``owner.timer(name)`` if ``owner`` has a timer attached, else a no-op context."""
    timer = getattr(owner, 'timer', None)
    return timer(name) if timer is not None else nullcontext()
