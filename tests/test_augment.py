"""Batched augmentation draws per-sample randomness and matches the per-item transforms it replaces."""

import torch
import torch.nn.functional as F

from imgcls.data.augment import BatchAugment, random_crop, random_flip


def test_random_crop_is_a_window_of_the_padded_image_with_per_sample_offsets():
    torch.manual_seed(0)
    images = torch.randint(1, 256, (64, 3, 8, 8), dtype=torch.uint8)
    cropped = random_crop(images, padding=2)
    padded = F.pad(images, (2, 2, 2, 2))
    offsets = set()
    for image, crop in zip(padded, cropped, strict=True):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(image[:, dy : dy + 8, dx : dx + 8], crop)
        ]
        assert matches, "each output must be an 8x8 window of its own padded input"
        offsets.add(matches[0])
    assert len(offsets) > 10  # samples draw their own offsets


def test_flip_flips_about_half_of_the_samples():
    torch.manual_seed(0)
    images = torch.arange(1000 * 4, dtype=torch.float32).view(1000, 1, 2, 2)
    flipped = random_flip(images, dim=-1)
    changed = (flipped != images).flatten(1).any(1)
    assert 400 < changed.sum() < 600
    assert torch.equal(flipped[changed], images[changed].flip(-1))


def test_augment_output_is_unit_float_of_the_same_shape():
    augment = BatchAugment(crop_padding=4, hflip=True, vflip=True, rotation=15)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = augment(images)
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert 0 <= out.min() and out.max() <= 1


def test_identity_augment_only_rescales():
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(BatchAugment()(images), images.float() / 255)
