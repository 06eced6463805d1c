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
    ``pool_sizes="auto"`` pools as the seed (2, 2, then 4 at the last stage), but never shrinks
    a side of the feature map below ``min_map`` (a smaller pool, or none): on 80x60 CASIA
    characters that is the seed's net exactly (a 5x3 map), on 28x28 digits a 3x3 map instead
    of 1x1, and 8x8 digits keep a 4x4 map. An explicit list is used as given (a pool larger
    than the map is clamped to it), with a warning when it shrinks the map below ``min_map``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (16, 32, 64),
        pool_sizes: Sequence[int] | str = "auto",
        hidden: int = 64,
        batch_norm: bool = False,
        dropout: float = 0.0,
        min_map: int = 3,
    ):
        super().__init__()
        in_channels, height, width = input_shape
        kernels = pool_kernels(channels, pool_sizes, (height, width), min_map)
        blocks: list[nn.Module] = []
        for out_channels, kernel in zip(channels, kernels, strict=True):
            blocks.append(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out_channels))
            blocks.append(nn.ReLU(inplace=True))
            blocks.append(nn.MaxPool2d(kernel))
            height, width = height // kernel[0], width // kernel[1]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        self.feature_map = (height, width)
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


def pool_kernels(
    channels: Sequence[int], pool_sizes: Sequence[int] | str, size: tuple[int, int], min_map: int
) -> list[tuple[int, int]]:
    """Each stage's (height, width) max-pooling kernel for an input of ``size`` (see SmallCNN)."""
    if pool_sizes == "auto":
        wanted, auto = [2] * (len(channels) - 1) + [4], True
    elif isinstance(pool_sizes, str):
        raise ValueError(f"model.net.pool_sizes must be 'auto' or a list of sizes, got {pool_sizes!r}")
    else:
        wanted, auto = [int(pool) for pool in pool_sizes], False
    if len(wanted) != len(channels):
        raise ValueError(f"channels {list(channels)} and pool_sizes {list(wanted)} must have the same length")
    kernels, sides = [], list(size)
    for pool in wanted:
        # auto: the largest pool up to the wanted one that leaves a side >= min_map (1 if none).
        kernel = tuple(
            next((p for p in range(pool, 0, -1) if side // p >= min_map), 1) if auto else max(1, min(pool, side))
            for side in sides
        )
        kernels.append(kernel)
        sides = [side // k for side, k in zip(sides, kernel, strict=True)]
    if not auto and min(sides) < min(min_map, *size):
        from imgcls import console

        console.warn(
            f"model.net.pool_sizes={list(wanted)} shrinks the {size[0]}x{size[1]} input to a {sides[0]}x{sides[1]} "
            f"feature map (below model.net.min_map={min_map}), which loses where strokes are; "
            "pool_sizes=auto keeps it at least that large"
        )
    return kernels


def _numel(shape: Sequence[int]) -> int:
    return int(torch.tensor(list(shape)).prod())
