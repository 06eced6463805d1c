"""The training split's order: each process's share, shuffled per (seed, epoch), as
``DistributedSampler`` draws it; and, for a run resumed from a checkpoint taken in the middle
of an epoch, the rest of that epoch.

Lightning counts a resumed epoch's trained batches as done and takes only the remaining
number from a fresh iterator: without :meth:`TrainingOrder.resume_after`, those would be the
epoch's first batches again, and the resumed run would train on other data than the
uninterrupted one.
"""

from __future__ import annotations

from torch.utils.data import DistributedSampler


class TrainingOrder(DistributedSampler):
    """``DistributedSampler(shuffle=True)`` whose next iteration can leave out its first samples."""

    def __init__(self, data, num_replicas: int, rank: int, seed: int):
        super().__init__(data, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._skip = 0

    def resume_after(self, samples: int) -> None:
        """Leave out the first ``samples`` of the next iteration (the current epoch's, already
        trained); none when they are the whole epoch (a checkpoint taken at its end)."""
        self._skip = samples if 0 < samples < self.num_samples else 0

    def __iter__(self):
        order = list(super().__iter__())
        skip, self._skip = self._skip, 0
        return iter(order[skip:])
