"""A model's predictions on a labelled split: the one input of every report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from imgcls.data.arrays import ImageArrays
from imgcls.data.augment import to_unit_float


@dataclass
class Predictions:
    """Class probabilities ``[N, K]`` and true labels ``[N]`` of one split, in the split's order.

    ``images`` (uint8 ``[N, C, H, W]``) is kept so that reports can show the mistakes.
    """

    split: str
    probabilities: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    images: np.ndarray | None = None

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of the predicted class."""
        return self.probabilities.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def sample_index(self) -> np.ndarray:
        return np.arange(len(self.labels))


@torch.no_grad()
def predict_split(
    model: torch.nn.Module, data: ImageArrays, split: str, class_names: list[str], batch_size: int = 256
) -> Predictions:
    """Run ``model`` (float [0, 1] images in, logits out) over ``data`` in order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(data), batch_size):
        images = to_unit_float(data.images[start : start + batch_size].to(device))
        chunks.append(model(images).float().softmax(dim=1).cpu())
    model.train(was_training)
    probabilities = torch.cat(chunks) if chunks else torch.zeros(0, len(class_names))
    return Predictions(
        split=split,
        probabilities=probabilities.numpy().astype(np.float64),
        labels=data.labels.numpy(),
        class_names=list(class_names),
        images=data.images.numpy(),
    )


def predict_test_sets(model: torch.nn.Module, datamodule, batch_size: int | None = None) -> list[Predictions]:
    """Predictions on the main test split (``test``) and on every extra test set."""
    batch_size = batch_size or getattr(datamodule, "eval_batch_size", 256)
    return [
        predict_split(model, data, name, datamodule.class_names, batch_size)
        for name, data in datamodule.test_sets.items()
    ]
