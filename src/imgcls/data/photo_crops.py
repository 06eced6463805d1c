"""CIFAR-shaped data with nothing to download: 32x32 crops of scikit-learn's two sample photos.

Each image is a 32x32 crop of one of the photos (china, flower) subsampled 1-4x at a random
place, so the pixels have real image statistics; the labels are random and balanced (every
class as often as the split's size allows). Throughput and pipelines can be measured on it
(scripts/bench.py): what a model learns from it means nothing, accuracy stays at chance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from imgcls.data.arrays import ImageArrays
from imgcls.data.datamodule import DatasetSplits, ImageDataModule

SIDE = 32


def photo_crops(
    count: int, seed: int | Sequence[int], num_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` uint8 ``[3, 32, 32]`` crops and balanced labels in random order, the same for a seed."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    images = np.empty((count, SIDE, SIDE, 3), dtype=np.uint8)
    for i in range(count):
        photo = photos[rng.integers(len(photos))]
        scale = int(rng.integers(1, 5))
        top = rng.integers(photo.shape[0] - SIDE * scale + 1)
        left = rng.integers(photo.shape[1] - SIDE * scale + 1)
        images[i] = photo[top : top + SIDE * scale : scale, left : left + SIDE * scale : scale]
    labels = rng.permutation(np.arange(count) % num_classes)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


class PhotoCropsDataModule(ImageDataModule):
    """Train, validation and test splits of :func:`photo_crops`, each drawn with its own seed
    derived from ``seed``, each balanced over ``num_classes`` classes named ``class0``..."""

    def __init__(
        self,
        train_size: int = 5120,
        val_size: int = 512,
        test_size: int = 512,
        seed: int = 0,
        num_classes: int = 10,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
        self.seed, self.n_classes = int(seed), int(num_classes)

    def load_splits(self) -> DatasetSplits:
        splits = {
            name: ImageArrays(*photo_crops(size, (self.seed, index), self.n_classes))
            for index, (name, size) in enumerate(self.sizes.items())
        }
        return DatasetSplits(**splits, class_names=[f"class{k}" for k in range(self.n_classes)])
