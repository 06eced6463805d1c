"""Batched, per-sample-random augmentation that runs on the training device.

Each sample in a batch draws its own crop, flips, angle, policy ops (data/auto_augment.py),
colour factors and erased box, as a per-item torchvision pipeline would, but the work is a
handful of tensor ops per batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from imgcls.data.auto_augment import PerSampleAutoAugment


class BatchAugment(nn.Module):
    """uint8 ``[N, C, H, W]`` in, float ``[N, C, H, W]`` in ``[0, 1]`` out. In this order:

    Args:
        random_resized_crop: ``{scale: [lo, hi], ratio: [lo, hi]}``: a crop of that area
            fraction and aspect ratio, resized back to the input size (torchvision's
            ``RandomResizedCrop``, bilinear); null: off.
        crop_padding: pad by this many pixels (zeros), then crop back to the original size
            at a random offset per sample (CIFAR's ``RandomCrop(32, padding=4)``).
        hflip / vflip: flip each sample with probability 0.5.
        randaugment: ``{num_ops, magnitude}`` (torchvision's ``RandAugment``; magnitude is a
            bin of 31); null: off.
        trivialaugment: torchvision's ``TrivialAugmentWide`` (instead of randaugment).
        color_jitter: ``{brightness, contrast, saturation, hue}``, each factor drawn from
            ``[max(0, 1 - x), 1 + x]`` (hue: a shift in ``[-hue, hue]`` turns), applied in that
            order; null: off.
        rotation: rotate each sample by a uniform angle in ``[-rotation, rotation]`` degrees.
        random_erasing: probability of erasing (to 0) one box of 2-33% of the area, aspect
            ratio 0.3-3.3 (torchvision's ``RandomErasing`` defaults).
    """

    def __init__(
        self,
        crop_padding: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        rotation: float = 0.0,
        random_resized_crop: Mapping | None = None,
        randaugment: Mapping | None = None,
        trivialaugment: bool = False,
        color_jitter: Mapping | None = None,
        random_erasing: float = 0.0,
    ):
        super().__init__()
        self.crop_padding = int(crop_padding)
        self.hflip = bool(hflip)
        self.vflip = bool(vflip)
        self.rotation = float(rotation)
        self.random_resized_crop = _floats(random_resized_crop, ("scale", "ratio"), ((0.08, 1.0), (3 / 4, 4 / 3)))
        self.policy = None
        if trivialaugment:
            self.policy = PerSampleAutoAugment("trivialaugment")
        elif randaugment is not None:
            settings = {"num_ops": 2, "magnitude": 9, **({} if randaugment is True else dict(randaugment))}
            self.policy = PerSampleAutoAugment("randaugment", **settings)
        self.color_jitter = {key: float(value) for key, value in dict(color_jitter or {}).items() if value}
        self.random_erasing = float(random_erasing or 0.0)

    @property
    def is_identity(self) -> bool:
        return not (
            self.crop_padding or self.hflip or self.vflip or self.rotation or self.random_resized_crop
            or self.policy or self.color_jitter or self.random_erasing
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.random_resized_crop:
            images = random_resized_crop(images, **self.random_resized_crop)
        if self.crop_padding or self.hflip or self.vflip:
            images = random_crop_flip(images, self.crop_padding, self.hflip, self.vflip)
        if self.policy is not None:
            images = self.policy(images)
        if self.color_jitter:
            images = color_jitter(images, **self.color_jitter)
        images = to_unit_float(images)
        if self.rotation:
            images = random_rotate(images, self.rotation)
        if self.random_erasing:
            images = random_erasing(images, self.random_erasing)
        return images

    def extra_repr(self) -> str:
        return (
            f"crop_padding={self.crop_padding}, hflip={self.hflip}, vflip={self.vflip}, rotation={self.rotation}, "
            f"random_resized_crop={self.random_resized_crop}, color_jitter={self.color_jitter}, "
            f"random_erasing={self.random_erasing}"
        )


def _floats(setting: Mapping | None, keys: Sequence[str], defaults: Sequence) -> dict | None:
    """A config mapping of (lo, hi) ranges as plain floats, missing keys at their defaults."""
    if setting is None or setting is False:
        return None
    setting = {} if setting is True else dict(setting)
    return {key: tuple(float(v) for v in setting.get(key, default)) for key, default in zip(keys, defaults, strict=True)}


class StepBatches:
    """A group of training batches (training/fused_steps.py), augmented (and mixed, with
    ``mixing``) one step's batch at a time, as the steps take them: ``(images, targets)`` per
    step, the targets being the labels, or the mixed soft targets. Augmenting a whole group
    at once streams it through the cache: 0.42-0.49 ms per 128 CIFAR images for a group of
    64 batches here, against 0.25-0.33 ms batch by batch."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: BatchAugment, batch_size: int, mixing=None):
        self.images, self.labels, self.augment = images, labels, augment
        self.batch_size, self.mixing = int(batch_size), mixing

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __iter__(self):
        # Each step's augmented batch is only the step's to hold: freed after its forward,
        # its memory (and cache) serves the next batch.
        for images, labels in zip(self.images.split(self.batch_size), self.labels.split(self.batch_size), strict=True):
            yield self._augmented(images, labels)

    def _augmented(self, images: torch.Tensor, labels: torch.Tensor):
        images = self.augment(images)
        return self.mixing(images, labels) if self.mixing is not None else (images, labels)


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1]; float input is returned unchanged."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images


def random_crop_flip(
    images: torch.Tensor, padding: int = 0, hflip: bool = False, vflip: bool = False
) -> torch.Tensor:
    """Per-sample random crop after zero padding, and random flips, as one gather.

    Each output pixel's source position in its (padded, flattened) image is computed for
    the whole batch, so the batch is copied once: a few times faster than indexing with
    broadcast index tensors, or a crop followed by flips.
    """
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding,) * 4) if padding else images
    rows = _positions(n, h, padding, vflip, device).view(n, h, 1)
    cols = _positions(n, w, padding, hflip, device).view(n, 1, w)
    index = (rows * (w + 2 * padding) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, index).view(n, c, h, w)


def _positions(n: int, size: int, padding: int, flip: bool, device) -> torch.Tensor:
    """``[n, size]`` source positions along one axis: a random offset, reversed for flipped samples."""
    steps = torch.arange(size, device=device).expand(n, size)
    if flip:
        flipped = torch.rand(n, 1, device=device) < 0.5
        steps = torch.where(flipped, steps.flip(1), steps)
    if padding:
        steps = steps + torch.randint(0, 2 * padding + 1, (n, 1), device=device)
    return steps


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    return random_crop_flip(images, padding)


def random_flip(images: torch.Tensor, dim: int) -> torch.Tensor:
    return random_crop_flip(images, hflip=dim in (-1, 3), vflip=dim in (-2, 2))


def random_rotate(images: torch.Tensor, max_degrees: float) -> torch.Tensor:
    n = images.shape[0]
    angles = (torch.rand(n, device=images.device) * 2 - 1) * math.radians(max_degrees)
    cos, sin = angles.cos(), angles.sin()
    zeros = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --- per-sample boxes: crops, erased regions, CutMix patches -------------------------------
def draw_boxes(n: int, height: int, width: int, scale, ratio, device, strict: bool = False, tries: int = 10):
    """torchvision's box draw for ``RandomResizedCrop`` / ``RandomErasing``, for ``n`` samples at
    once: up to ``tries`` draws of an area fraction in ``scale`` and a log-uniform aspect ratio
    in ``ratio``, the first that fits taken, at a uniform position. Returns ``top, left, h, w``
    and whether one fitted (``[n]`` each). ``strict``: the box must be smaller than the image."""
    area = height * width
    fraction = torch.empty(n, tries, device=device).uniform_(*scale)
    log_ratio = torch.empty(n, tries, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = log_ratio.exp()
    w = (area * fraction * aspect).sqrt().round().long()
    h = (area * fraction / aspect).sqrt().round().long()
    if strict:
        fits = (h < height) & (w < width)
    else:
        fits = (h > 0) & (w > 0) & (h <= height) & (w <= width)
    first = fits.int().argmax(1, keepdim=True)  # the first fitting try (0 when none fits)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    found = fits.any(1)
    h, w = torch.where(found, h, height), torch.where(found, w, width)
    top = (torch.rand(n, device=device) * (height - h + 1)).long()
    left = (torch.rand(n, device=device) * (width - w + 1)).long()
    return top, left, h, w, found


def box_masks(top, left, h, w, height: int, width: int) -> torch.Tensor:
    """``[n, 1, height, width]`` bool, true inside each sample's box."""
    rows = torch.arange(height, device=top.device).view(1, height, 1)
    cols = torch.arange(width, device=top.device).view(1, 1, width)
    inside_rows = (rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
    inside_cols = (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1))
    return (inside_rows & inside_cols).unsqueeze(1)


def random_resized_crop(images: torch.Tensor, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Per-sample ``RandomResizedCrop`` back to the input size (bilinear), as one grid_sample.
    No box fits in 10 tries: the whole image (torchvision takes a centre crop of the closest
    aspect ratio)."""
    n, _, height, width = images.shape
    top, left, h, w, _ = draw_boxes(n, height, width, scale, ratio, images.device)
    # Each output pixel's position in the input, in grid_sample's [-1, 1] coordinates.
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [n, images.shape[1], height, width], align_corners=False)
    resized = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return resized.round_().clamp_(0, 255).to(images.dtype) if images.dtype == torch.uint8 else resized


def color_jitter(
    images: torch.Tensor, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0
):
    """uint8 in and out; each sample draws its factors, and a hue shift in ``[-hue, hue]``
    turns (torchvision's ``ColorJitter`` arithmetic, in this fixed order)."""
    n = len(images)
    out = images.float()

    def factors(amount):
        return torch.empty(n, 1, 1, 1, device=images.device).uniform_(max(0.0, 1 - amount), 1 + amount)

    def blend(other, factor):
        return (out * factor + other * (1 - factor)).clamp_(0, 255).floor_()

    if brightness:
        out = blend(torch.zeros((), device=images.device), factors(brightness))
    if contrast:
        gray = _gray(out).floor() if out.shape[1] == 3 else out
        out = blend(gray.mean(dim=(1, 2, 3), keepdim=True), factors(contrast))
    if saturation and out.shape[1] == 3:
        out = blend(_gray(out).floor(), factors(saturation))
    if hue and out.shape[1] == 3:
        shift = torch.empty(n, 1, 1, device=images.device).uniform_(-hue, hue)
        out = _shift_hue(out / 255.0, shift).mul_(255.0).round_()
    return out.to(images.dtype)


def _shift_hue(rgb: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1], each sample's hue turned by its ``shift`` (in turns), through HSV."""
    r, g, b = rgb.unbind(1)
    value, low = rgb.amax(1), rgb.amin(1)
    chroma = value - low
    grey = chroma == 0
    saturation = chroma / torch.where(grey, torch.ones_like(value), value)
    divisor = torch.where(grey, torch.ones_like(chroma), chroma)
    rc, gc, bc = (value - r) / divisor, (value - g) / divisor, (value - b) / divisor
    hue = torch.where(value == r, bc - gc, torch.where(value == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(grey, torch.zeros_like(hue), hue) / 6.0
    hue = torch.remainder(hue + shift, 1.0)
    # HSV back to RGB: channel n is v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6.
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + hue * 6.0, 6.0)
        channels.append(value - value * saturation * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(channels, 1)


def _gray(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images.unbind(1)
    return (r * 0.2989 + g * 0.587 + b * 0.114).unsqueeze(1)


def random_erasing(images: torch.Tensor, p: float, scale=(0.02, 0.33), ratio=(0.3, 3.3), value: float = 0.0):
    """Per sample, with probability ``p``: one box set to ``value`` (torchvision's ``RandomErasing``)."""
    n, _, height, width = images.shape
    top, left, h, w, found = draw_boxes(n, height, width, scale, ratio, images.device, strict=True)
    erase = found & (torch.rand(n, device=images.device) < p)
    mask = box_masks(top, left, h, w, height, width) & erase.view(-1, 1, 1, 1)
    return images.masked_fill(mask, value)
