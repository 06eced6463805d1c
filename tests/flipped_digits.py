"""The real digits with a few training labels deliberately wrong (data._target_ of a test run)."""

from __future__ import annotations

from imgcls.data.digits import DigitsDataModule

# Positions in the training split whose labels are replaced by another digit.
FLIPPED = (3, 100, 250, 400, 555, 700, 901, 1100)


class FlippedDigitsDataModule(DigitsDataModule):
    def load_splits(self):
        splits = super().load_splits()
        labels = splits.train.labels
        for position in FLIPPED:
            labels[position] = (labels[position] + 5) % 10
        return splits
