"""Images held as one uint8 tensor, served a whole batch at a time."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset


@dataclass
class ImageArrays(Dataset):
    """``images`` is uint8 ``[N, C, H, W]``; ``labels`` is int64 ``[N]``.

    ``__getitems__`` lets a DataLoader fetch a batch with one tensor index instead of
    N Python-level item calls and a collate: per-epoch work is slicing only.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]

    def subset(self, indices) -> ImageArrays:
        index = torch.as_tensor(indices)
        return ImageArrays(self.images[index], self.labels[index])


class WithIndex(Dataset):
    """A dataset's batches with each sample's position appended: ``(images, labels, positions)``,
    so evaluated predictions can be traced back to their images (and files)."""

    def __init__(self, data: Dataset):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (*self.data.__getitems__(indices), torch.as_tensor(indices, dtype=torch.long))


def keep_batch(batch):
    """collate_fn for ImageArrays: the batch is already stacked."""
    return batch
