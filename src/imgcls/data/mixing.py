"""MixUp and CutMix on the device batch, each sample with its own partner, weight and box.

timm's ``Mixup`` pairs sample i with sample N-1-i and, per sample ('elem' mode), loops in
Python; torchvision's v2 ``MixUp``/``CutMix`` draw one weight for the whole batch. Here a
random permutation pairs the samples and every draw is a tensor of N values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from imgcls.data.augment import box_masks

# The data.augment keys this module takes (the rest are BatchAugment's).
MIXING_KEYS = ("mixup_alpha", "cutmix_alpha", "mixup_prob", "mixup_switch_prob")


class BatchMixing:
    """``(images, labels) -> (mixed images, soft targets [N, num_classes])``; the targets sum to 1.

    Args:
        mixup_alpha: MixUp's Beta(alpha, alpha) weight; 0: no MixUp.
        cutmix_alpha: CutMix's Beta(alpha, alpha) area kept; 0: no CutMix.
        mixup_prob: probability that a sample is mixed at all.
        mixup_switch_prob: with both on, probability that a mixed sample takes CutMix.
    """

    def __init__(
        self,
        num_classes: int,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        mixup_switch_prob: float = 0.5,
    ):
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob = float(mixup_prob), float(mixup_switch_prob)

    @property
    def enabled(self) -> bool:
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.prob > 0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, height, width = images.shape
        device = images.device
        partner = torch.randperm(n, device=device)
        mixed = torch.rand(n, device=device) < self.prob
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            cutmix = torch.rand(n, device=device) < self.switch_prob
        else:
            cutmix = torch.full((n,), self.cutmix_alpha > 0, device=device)
        weight = torch.ones(n, device=device)  # the share of each sample's own image
        if self.mixup_alpha > 0:
            weight = torch.where(cutmix, weight, _beta(self.mixup_alpha, n, device))
        masks = torch.zeros(n, 1, height, width, dtype=torch.bool, device=device)
        if self.cutmix_alpha > 0:
            masks = _cutmix_boxes(_beta(self.cutmix_alpha, n, device), height, width) & cutmix.view(
                -1, 1, 1, 1
            )
            # The box is clipped at the image border: the weight is the area actually kept.
            kept = 1.0 - masks.flatten(1).float().mean(1)
            weight = torch.where(cutmix, kept, weight)
        weight = torch.where(mixed, weight, torch.ones_like(weight))
        masks &= mixed.view(-1, 1, 1, 1)
        others = images[partner]
        blended = torch.lerp(
            others, images, weight.view(-1, 1, 1, 1)
        )  # weight * own + (1 - weight) * partner
        out = torch.where(cutmix.view(-1, 1, 1, 1), torch.where(masks, others, images), blended)
        own = F.one_hot(labels, self.num_classes).to(images.dtype)
        targets = own * weight.view(-1, 1) + own[partner] * (1.0 - weight.view(-1, 1))
        return out, targets


def _beta(alpha: float, n: int, device) -> torch.Tensor:
    concentration = torch.full((n,), float(alpha), device=device)
    return torch.distributions.Beta(concentration, concentration).sample()


def _cutmix_boxes(kept: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """CutMix's box per sample: ``1 - kept`` of the area, centred at a uniform pixel, clipped."""
    n, device = len(kept), kept.device
    cut = (1.0 - kept).sqrt()
    h, w = (height * cut).long(), (width * cut).long()
    cy = torch.randint(0, height, (n,), device=device)
    cx = torch.randint(0, width, (n,), device=device)
    top, bottom = (cy - h // 2).clamp(0, height), (cy + h // 2).clamp(0, height)
    left, right = (cx - w // 2).clamp(0, width), (cx + w // 2).clamp(0, width)
    return box_masks(top, left, bottom - top, right - left, height, width)
