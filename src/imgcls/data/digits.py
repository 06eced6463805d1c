"""scikit-learn's handwritten digits: real 8x8 grayscale images that ship with the package.

1,797 digits from the UCI optdigits set (values 0-16), so the demo trains offline.
"""

from __future__ import annotations

import numpy as np
import torch

from imgcls.data.arrays import ImageArrays
from imgcls.data.datamodule import DatasetSplits, ImageDataModule
from imgcls.data.splits import stratified_split


class DigitsDataModule(ImageDataModule):
    def __init__(
        self, val_fraction: float = 0.15, test_fraction: float = 0.2, split_seed: int = 42, **kwargs
    ):
        super().__init__(**kwargs)
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def load_splits(self) -> DatasetSplits:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        everything = ImageArrays(torch.from_numpy(images), torch.from_numpy(digits.target))
        parts = stratified_split(
            digits.target, {"val": self.val_fraction, "test": self.test_fraction}, seed=self.split_seed
        )
        return DatasetSplits(
            train=everything.subset(parts["train"]),
            val=everything.subset(parts["val"]),
            test=everything.subset(parts["test"]),
            class_names=[str(name) for name in digits.target_names],
        )
