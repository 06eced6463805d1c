"""Training batches drawn straight from the training split's uint8 tensor on the training
device (``data.resident``): the split moves there once, and each epoch's order, batching
and augmentation run there, with no DataLoader in between (airbench trains CIFAR-10 this
way on a GPU). On a CPU the split is in memory already, so residency only drops the
DataLoader's per-batch work: its index lists, and a group of fused steps copied out whole
(training/fused_steps.py) where each step can gather its own batch while it runs.

The order is the sampler's, the one the DataLoader path draws (seed, epoch and this
process's share under DDP), so both paths train on the same batches.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from imgcls.config import ConfigError
from imgcls.data.arrays import ImageArrays

SETTINGS = ("auto", True, False)


def resident_device(
    setting, share: float, data: ImageArrays, device: torch.device, num_workers: int, sampler: str
) -> torch.device | None:
    """The device ``data`` lives on while it trains, or None for the DataLoader path.

    ``auto``: resident when nothing asks for a DataLoader (no workers, the plain random
    sampler) and the split fits in ``share`` of the device's free memory (a CPU's: always,
    the split is in memory already). ``true`` insists, and says why where it cannot.
    """
    if setting not in SETTINGS:
        raise ConfigError(f"data.resident must be auto, true or false, got {setting!r}")
    if setting is False:
        return None
    blockers = []
    if num_workers > 0:
        blockers.append(f"data.num_workers={num_workers} (workers feed a DataLoader)")
    if sampler != "random":
        blockers.append(f"data.sampler={sampler}")
    if not isinstance(data.images, torch.Tensor):
        blockers.append("the images are decoded as they load (data.cache=false)")
    elif device.type == "cuda":
        size = data.images.numel() * data.images.element_size() + data.labels.numel() * 8
        free, _ = torch.cuda.mem_get_info(device)
        if size > share * free:
            blockers.append(
                f"the training split ({size / 2**30:.2f} GiB) exceeds data.resident_memory_share={share} "
                f"of the {free / 2**30:.1f} GiB free on {device}"
            )
    if not blockers:
        return device
    if setting is True:
        raise ConfigError(f"data.resident=true, but {' and '.join(blockers)}: set data.resident=auto or false")
    return None


class ResidentBatches:
    """One epoch's training batches of ``data`` (on its device), in ``sampler``'s order.

    ``group_steps`` > 1: each batch is a group of that many steps' samples (fused steps),
    handed over as a :class:`StepGather` so that each step gathers its own images.
    ``positions``: batches carry each sample's position in the split too (as
    :class:`~imgcls.data.arrays.WithIndex` does for a DataLoader). ``sampler`` is public, as a
    DataLoader's is: Lightning sets its epoch.
    """

    def __init__(
        self,
        data: ImageArrays,
        sampler: DistributedSampler,
        batch_size: int,
        group_steps: int = 1,
        positions: bool = False,
    ):
        self.data, self.sampler = data, sampler
        self.batch_size, self.group_steps, self.positions = int(batch_size), int(group_steps), bool(positions)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / (self.batch_size * self.group_steps))

    def __iter__(self):
        device = self.data.images.device
        # numpy reads the sampler's ints a few times faster than torch.as_tensor of a list
        # (3.4 -> 1.6 ms an epoch for 43k samples here).
        order = np.fromiter(self.sampler, dtype=np.int64)  # fewer than len() on a resumed epoch
        order = torch.from_numpy(order).to(device)
        for indices in order.split(self.batch_size * self.group_steps):
            labels = self.data.labels[indices]
            if self.group_steps > 1:
                yield StepGather(self.data.images, indices), labels
            elif self.positions:
                yield self.data.images[indices], labels, indices
            else:
                yield self.data.images[indices], labels


class StepGather:
    """A group's images, gathered from ``source`` one step's batch at a time (``split``), so
    the group is never copied out whole. Not a tensor: Lightning's device transfer leaves it
    as it is (``source`` is on the device already)."""

    def __init__(self, source: torch.Tensor, indices: torch.Tensor):
        self.source, self.indices = source, indices

    def __len__(self) -> int:
        return len(self.indices)

    def split(self, batch_size: int):
        return (self.source[chunk] for chunk in self.indices.split(batch_size))
