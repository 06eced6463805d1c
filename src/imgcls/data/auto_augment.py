"""RandAugment and TrivialAugmentWide with each sample drawing its own ops and magnitudes.

torchvision's v2 transforms draw one op for a whole batch tensor. Here every sample of a
uint8 ``[N, C, H, W]`` batch gets its own draw, with torchvision's op set, magnitude bins
and arithmetic (nearest-pixel geometry, zero fill, uint8 rounding); each op runs once per
batch on the samples that drew it, with per-sample magnitudes as tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

OPS = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
    "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)  # fmt: skip
NUM_BINS = 31
# Ops whose magnitude takes a random sign.
_SIGNED = {
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
}


def magnitude_table(policy: str, height: int, width: int) -> torch.Tensor:
    """``[len(OPS), NUM_BINS]`` magnitudes, torchvision's ``_AUGMENTATION_SPACE`` of the policy."""
    wide = policy == "trivialaugment"
    shear, rotate, blend = (0.99, 135.0, 0.99) if wide else (0.3, 30.0, 0.9)
    line = torch.linspace(0.0, 1.0, NUM_BINS)
    bits_range = 6 if wide else 4
    rows = {
        "ShearX": line * shear,
        "ShearY": line * shear,
        "TranslateX": line * (32.0 if wide else 150.0 / 331.0 * width),
        "TranslateY": line * (32.0 if wide else 150.0 / 331.0 * height),
        "Rotate": line * rotate,
        "Posterize": (8 - torch.arange(NUM_BINS) / ((NUM_BINS - 1) / bits_range)).round(),
        "Solarize": torch.linspace(1.0, 0.0, NUM_BINS),
        **{name: line * blend for name in ("Brightness", "Color", "Contrast", "Sharpness")},
    }
    return torch.stack([rows.get(name, torch.zeros(NUM_BINS)) for name in OPS])


def draw_ops(policy: str, n: int, num_ops: int, magnitude: int, height: int, width: int, device):
    """Each sample's ops and signed magnitudes, ``[num_ops, n]`` each: RandAugment's fixed
    magnitude bin, or TrivialAugmentWide's one op at a uniformly drawn bin."""
    table = magnitude_table(policy, height, width).to(device)
    ops = torch.randint(0, len(OPS), (num_ops, n), device=device)
    if policy == "trivialaugment":
        bins = torch.randint(0, NUM_BINS, (num_ops, n), device=device)
    else:
        bins = torch.full((num_ops, n), int(magnitude), device=device)
    values = table[ops, bins]
    signed = torch.tensor([name in _SIGNED for name in OPS], device=device)[ops]
    flip = signed & (torch.rand(num_ops, n, device=device) < 0.5)
    return ops, torch.where(flip, -values, values)


def apply_ops(images: torch.Tensor, ops: torch.Tensor, magnitudes: torch.Tensor) -> torch.Tensor:
    """uint8 ``images`` with sample i transformed by op ``OPS[ops[i]]`` at ``magnitudes[i]``."""
    out = images.clone()
    # The geometric ops are one affine map each: all of them in one grid_sample.
    geometric = torch.zeros_like(ops, dtype=torch.bool)
    for name in _GEOMETRIC:
        geometric |= ops == OPS.index(name)
    chosen = geometric.nonzero().squeeze(1)
    if len(chosen):
        out.index_copy_(0, chosen, _geometric(images[chosen], ops[chosen], magnitudes[chosen]))
    for index, name in enumerate(OPS):
        if name == "Identity" or name in _GEOMETRIC:
            continue
        chosen = (ops == index).nonzero().squeeze(1)
        if len(chosen):
            result = _OP_FUNCTIONS[name](images.index_select(0, chosen), magnitudes.index_select(0, chosen))
            out.index_copy_(0, chosen, result)
    return out


class PerSampleAutoAugment(torch.nn.Module):
    """``policy``: ``randaugment`` (``num_ops`` ops at bin ``magnitude`` of 31) or
    ``trivialaugment`` (one op, uniform bin); each sample draws its own."""

    def __init__(self, policy: str, num_ops: int = 1, magnitude: int = 9):
        super().__init__()
        self.policy, self.num_ops, self.magnitude = policy, int(num_ops), int(magnitude)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        ops, magnitudes = draw_ops(self.policy, n, self.num_ops, self.magnitude, h, w, images.device)
        for step in range(self.num_ops):
            images = apply_ops(images, ops[step], magnitudes[step])
        return images

    def extra_repr(self) -> str:
        return f"policy={self.policy}, num_ops={self.num_ops}, magnitude={self.magnitude}"


# --- geometry: torchvision's inverse affine matrices, one per sample, one grid_sample ---------
_GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def _geometric(images, ops, m):
    """Each sample's geometric op (one of ``_GEOMETRIC``) as its torchvision affine parameters."""

    def where(name, value):
        return torch.where(ops == OPS.index(name), value, torch.zeros_like(m))

    shears = (ops == OPS.index("ShearX")) | (ops == OPS.index("ShearY"))
    return _affine(
        images,
        angle=where("Rotate", -m),  # torchvision's rotate turns the other way round from affine
        shear_x=where("ShearX", m),
        shear_y=where("ShearY", m),
        tx=where("TranslateX", m.trunc()),
        ty=where("TranslateY", m.trunc()),
        top_left=shears,  # RandAugment shears about the top-left corner
    )


def _affine(images, angle=None, shear_x=None, shear_y=None, tx=None, ty=None, top_left=False):
    """torchvision's ``affine`` (and ``rotate``) with per-sample parameters (``[n]`` tensors,
    degrees for ``angle``, tangents for the shears; ``top_left``: a bool or ``[n]`` bools, the
    centre being the top-left corner, else the image centre), nearest pixel, zero fill."""
    n, _, h, w = images.shape
    zeros = torch.zeros(n, device=images.device)
    rot = torch.deg2rad(angle) if angle is not None else zeros
    sx = torch.atan(shear_x) if shear_x is not None else zeros
    sy = torch.atan(shear_y) if shear_y is not None else zeros
    tx = tx if tx is not None else zeros
    ty = ty if ty is not None else zeros
    corner = torch.as_tensor(top_left, device=images.device).float()
    cx, cy = corner * (-w * 0.5), corner * (-h * 0.5)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    m0, m1, m3, m4 = d, -b, -c, a  # the inverse rotation-shear (its determinant is 1)
    m2 = m0 * (-cx - tx) + m1 * (-cy - ty) + cx
    m5 = m3 * (-cx - tx) + m4 * (-cy - ty) + cy
    # The matrix maps output to input pixel positions relative to the image centre; in
    # affine_grid's [-1, 1] coordinates (align_corners=False) it reads:
    theta = torch.stack([m0, m1 * h / w, 2 * m2 / w, m3 * w / h, m4, 2 * m5 / h], 1).view(n, 2, 3)
    grid = F.affine_grid(theta, [n, images.shape[1], h, w], align_corners=False)
    sampled = F.grid_sample(images.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return sampled.round().to(images.dtype)


# --- colour: blends with a per-sample factor, as torchvision's _blend ------------------------
def _blend(images, other, factor):
    factor = factor.view(-1, 1, 1, 1)
    return (images * factor + other * (1.0 - factor)).clamp_(0, 255).to(torch.uint8)


def _gray(images):
    if images.shape[1] == 1:
        return images.float()
    r, g, b = images.float().unbind(1)
    return (r * 0.2989 + g * 0.587 + b * 0.114).unsqueeze(1)


def _brightness(images, m):
    return _blend(images.float(), torch.zeros((), device=images.device), 1.0 + m)


def _color(images, m):
    if images.shape[1] == 1:
        return images.clone()
    return _blend(images.float(), _gray(images).to(torch.uint8).float(), 1.0 + m)


def _contrast(images, m):
    gray = _gray(images).floor() if images.shape[1] == 3 else images.float()
    return _blend(images.float(), gray.mean(dim=(1, 2, 3), keepdim=True), 1.0 + m)


def _sharpness(images, m):
    h, w = images.shape[-2:]
    if h <= 2 or w <= 2:
        return images.clone()
    floats = images.float()
    # torchvision's kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13: the 3x3 sum plus 4 x the centre
    # (a pooling is much faster than a grouped convolution on CPU).
    blurred = (F.avg_pool2d(floats, 3, stride=1) * 9 + 4 * floats[..., 1:-1, 1:-1]).div_(13).round_()
    other = floats.clone()
    other[..., 1:-1, 1:-1] = blurred  # the border keeps its pixels, as in torchvision
    return _blend(floats, other, 1.0 + m)


def _posterize(images, m):
    bits = m.round().to(torch.int64).view(-1, 1, 1, 1)
    mask = ((1 << bits) - 1) << (8 - bits)
    return (images.to(torch.int64) & mask).to(torch.uint8)


def _solarize(images, m):
    threshold = (255.0 * m).view(-1, 1, 1, 1)
    return torch.where(images >= threshold, 255 - images, images)


_OP_FUNCTIONS = {
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": _solarize,
    # No magnitude, and torchvision computes them per image of a batch already.
    "AutoContrast": lambda images, m: TF.autocontrast(images),
    "Equalize": lambda images, m: TF.equalize(images),
}
