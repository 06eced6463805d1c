"""The baseline networks of the course material, for any channel count and image size.

Each takes ``input_shape`` (C, H, W) and ``num_classes`` from the data module; the
other arguments are the user's choices from ``conf/model/*.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LogisticRegression(nn.Sequential):
    """Flatten + one linear layer (seed 004's softmax regression)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int):
        super().__init__(nn.Flatten(), nn.Linear(_numel(input_shape), num_classes))


class MLP(nn.Sequential):
    """Flatten, then Linear-ReLU(-Dropout) per hidden size, then the output layer (seed 002: 256, 128)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden_sizes: Sequence[int] = (256, 128),
        dropout: float = 0.0,
    ):
        layers: list[nn.Module] = [nn.Flatten()]
        width = _numel(input_shape)
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


class SmallCNN(nn.Module):
    """Seed 004's CNN: conv 16-32-64 (3x3, same padding), each followed by max-pooling, dense 64.

    ``batch_norm`` and ``dropout`` give seed 002's CNN+BN/dropout variant of the same net.
    A pooling size larger than the feature map is clamped to it, so 8x8 digits work as
    well as 80x60 characters or 32x32 CIFAR images.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (16, 32, 64),
        pool_sizes: Sequence[int] = (2, 2, 4),
        hidden: int = 64,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if len(channels) != len(pool_sizes):
            raise ValueError(
                f"channels {list(channels)} and pool_sizes {list(pool_sizes)} must have the same length"
            )
        in_channels, height, width = input_shape
        blocks: list[nn.Module] = []
        for out_channels, pool in zip(channels, pool_sizes, strict=True):
            blocks.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out_channels))
            blocks.append(nn.ReLU(inplace=True))
            kernel = (min(pool, height), min(pool, width))
            blocks.append(nn.MaxPool2d(kernel))
            height, width = height // kernel[0], width // kernel[1]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [
            nn.Flatten(),
            nn.Linear(in_channels * height * width, hidden),
            nn.ReLU(inplace=True),
        ]
        if dropout:
            head.insert(1, nn.Dropout(dropout))
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(hidden, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _numel(shape: Sequence[int]) -> int:
    return int(torch.tensor(list(shape)).prod())
