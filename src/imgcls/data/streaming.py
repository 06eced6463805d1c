"""Per-item decoding for datasets too large to cache: same uint8 batches, decoded in the loader."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from imgcls.data.image_io import load_image


class StreamingImages(Dataset):
    """Files decoded on demand, in DataLoader workers when ``num_workers > 0``.

    It looks like :class:`~imgcls.data.arrays.ImageArrays` to the data module and the
    loaders: ``labels``, ``images`` (indexable, with a ``shape``) and ``__getitems__``
    returning a stacked uint8 batch, so nothing after the loader knows the difference.
    """

    def __init__(self, paths: Sequence[str], labels, size: tuple[int, int], channels: int):
        self.paths = [str(path) for path in paths]
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.size, self.channels = (int(size[0]), int(size[1])), int(channels)
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} files but {len(self.labels)} labels")
        self.images = _DecodedOnDemand(self)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(index), self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([self.decode(index) for index in indices])
        return images, self.labels[torch.as_tensor(indices, dtype=torch.long)]

    def decode(self, index: int) -> torch.Tensor:
        return torch.from_numpy(load_image(self.paths[int(index)], self.channels, self.size))


class _DecodedOnDemand:
    """``dataset.images[index]`` decodes the indexed files (used for shapes and statistics)."""

    def __init__(self, dataset: StreamingImages):
        self._dataset = dataset

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self._dataset), self._dataset.channels, *self._dataset.size))

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, index) -> torch.Tensor:
        index = torch.as_tensor(index)
        if index.ndim == 0:
            return self._dataset.decode(int(index))
        return torch.stack([self._dataset.decode(i) for i in index.tolist()])
