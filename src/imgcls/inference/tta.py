"""Test-time augmentation: a model's softmax averaged over views of each image.

``flip``: the image and its horizontal mirror. ``five_crop``: the four corner crops and the
centre crop of ``CROP_FRACTION`` of each side, each resized back to the input size (the
model's input shape is fixed). ``flip_five_crop``: those five and their mirrors (ten crops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from imgcls.config import ConfigError

MODES = ("none", "flip", "five_crop", "flip_five_crop")
CROP_FRACTION = 0.875


def check_mode(mode: str | None, key: str = "tta") -> str:
    mode = "none" if mode in (None, False) else str(mode)
    if mode not in MODES:
        raise ConfigError(f"{key}={mode!r} must be one of {', '.join(MODES)}")
    return mode


def views(images: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The views of a float ``[N, C, H, W]`` batch, each shaped like it."""
    if mode == "none":
        return [images]
    if mode == "flip":
        return [images, images.flip(-1)]
    height, width = images.shape[-2:]
    size = [max(1, round(height * CROP_FRACTION)), max(1, round(width * CROP_FRACTION))]
    crops = TF.ten_crop(images, size) if mode == "flip_five_crop" else TF.five_crop(images, size)
    return [TF.resize(crop, [height, width], antialias=True) for crop in crops]


def averaged_probabilities(
    logits_of: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, mode: str
):
    """The mean over the views of ``softmax(logits_of(view))``."""
    probabilities = [logits_of(view).float().softmax(dim=1) for view in views(images, mode)]
    return torch.stack(probabilities).mean(0)


class AveragedNet(nn.Module):
    """A net whose logits are the log of its views' mean softmax: a softmax of them gives the
    averaged probabilities, and cross-entropy their negative log-likelihood."""

    def __init__(self, net: nn.Module, mode: str):
        super().__init__()
        self.net, self.mode = net, mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probabilities = averaged_probabilities(self.net, images, self.mode)
        return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()


@contextmanager
def averaging_views(model, mode: str) -> Iterator[None]:
    """Within it, ``model.net`` (an ImageClassifier's) predicts with TTA. Views are taken after
    the model's normalization, which mirroring, cropping and resizing commute with."""
    net = model.net
    model.net = AveragedNet(net, mode)
    try:
        yield
    finally:
        model.net = net
