"""The order validation and test sets are evaluated in: one fixed shuffle.

Image folders, CSV files and CASIA archives list their samples class by class. Evaluated
in that order, ``trainer.limit_val_batches``/``limit_test_batches`` would score the first
few classes only, and every batch would hold one class. A seeded permutation makes any
prefix a representative sample, and is the same in every run and every epoch. Under DDP
each process takes every ``replicas``-th sample of it, unpadded, so across processes every
sample counts exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler

# Fixed, not the run's seed: two runs (or a run and evaluate.py) score the same samples
# under the same limit.
EVALUATION_ORDER_SEED = 0


class EvaluationOrder(DistributedSampler):
    """A ``DistributedSampler`` (already this process's share), so that Lightning does not
    wrap it in a distributed sampler of its own."""

    def __init__(self, size: int, replicas: int = 1, rank: int = 0, seed: int = EVALUATION_ORDER_SEED):
        super().__init__(range(size), num_replicas=replicas, rank=rank, shuffle=False, seed=seed)
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
        self.indices = order[rank::replicas].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
