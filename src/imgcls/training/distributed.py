"""Collectives the training code needs beyond what Lightning offers directly."""

from __future__ import annotations

import torch


def gather_rows(module, tensor: torch.Tensor) -> torch.Tensor:
    """The rows of ``tensor`` from every process, concatenated in rank order.

    ``LightningModule.all_gather`` needs equal shapes; the processes' evaluation shares
    differ by up to one sample (they are not padded, so no sample counts twice), so each
    share is padded to the longest for the gather and cut back after it.
    """
    if module.trainer.world_size == 1:
        return tensor
    sizes = module.all_gather(torch.tensor([len(tensor)], device=tensor.device)).view(-1).tolist()
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: len(tensor)] = tensor
    gathered = module.all_gather(padded)
    return torch.cat([gathered[rank, :size] for rank, size in enumerate(sizes)])
