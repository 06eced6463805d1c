"""Synthetic uint8 images of any size for scripts/gpu_check.py (``data._target_=gpu_check_data.SyntheticImages``)."""

from __future__ import annotations

import torch

from imgcls.data.arrays import ImageArrays
from imgcls.data.datamodule import DatasetSplits, ImageDataModule


class SyntheticImages(ImageDataModule):
    """Random uint8 images ``[N, 3, side, side]`` with random labels: speed only, nothing to learn."""

    def __init__(self, train_size: int, val_size: int, test_size: int, side: int = 224,
                 num_classes: int = 10, seed: int = 0, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
        self.side, self.n_classes, self.seed = int(side), int(num_classes), int(seed)

    def load_splits(self) -> DatasetSplits:
        generator = torch.Generator().manual_seed(self.seed)

        def split(size: int) -> ImageArrays:
            shape = (size, 3, self.side, self.side)
            images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
            return ImageArrays(images, torch.randint(0, self.n_classes, (size,), generator=generator))

        return DatasetSplits(**{name: split(size) for name, size in self.sizes.items()},
                             class_names=[f"class_{i}" for i in range(self.n_classes)])  # fmt: skip
