"""Reduced-scale JPEG decoding (data/image_io.py): faster, and within the stated tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from image_fixtures import exif_rotated_jpeg
from PIL import Image

from imgcls.data.image_io import REDUCED_DECODE_TOLERANCE, load_image, reduced_jpeg_decode


def _photo_jpeg(path, name: str):
    from skimage import data

    Image.fromarray(getattr(data, name)()).save(path, quality=90)
    return path


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "coffee"])
@pytest.mark.parametrize("size", [(32, 32), (64, 64), (96, 128)])
def test_reduced_decode_agrees_with_full_decode_on_real_photos(tmp_path, name, size):
    path = _photo_jpeg(tmp_path / f"{name}.jpg", name)
    for channels in (3, 1):
        full = load_image(path, channels, size, reduced=False).astype(int)
        reduced = load_image(path, channels, size).astype(int)
        assert reduced.shape == full.shape == (channels, *size)
        difference = np.abs(full - reduced)
        assert difference.mean() <= REDUCED_DECODE_TOLERANCE["mean"]
        assert difference.max() <= REDUCED_DECODE_TOLERANCE["max"]


def test_reduced_decode_picks_the_largest_scale_that_keeps_the_target(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (2048, 1536), (120, 30, 200)).save(path)
    for size, decoded in [
        ((384, 512), (512, 384)),
        ((512, 512), (1024, 768)),
        ((100, 100), (256, 192)),
        ((1000, 1000), (2048, 1536)),
    ]:
        with Image.open(path) as image:
            reduced_jpeg_decode(image, size)
            image.load()
            assert image.size == decoded, size
    with Image.open(path) as image:  # (H, W) = (400, 1100): only 1/1 leaves 1100 px of width
        assert reduced_jpeg_decode(image, (400, 1100)) is None


def test_reduced_decode_of_an_exif_rotated_jpeg_matches_the_full_decode(tmp_path):
    from skimage import data

    stored = np.ascontiguousarray(data.astronaut()[:, :400])  # 512 high, 400 wide, stored unrotated
    path = exif_rotated_jpeg(tmp_path / "rotated.jpg", stored, orientation=6)
    size = (50, 64)  # (H, W) as viewed: turned, the photo is 400 high and 512 wide
    full = load_image(path, 3, size, reduced=False).astype(int)
    reduced = load_image(path, 3, size).astype(int)
    assert np.abs(full - reduced).mean() <= REDUCED_DECODE_TOLERANCE["mean"]
    # Not the unrotated photo squeezed into the shape: that would differ by far more.
    unrotated = np.asarray(Image.fromarray(stored).resize((64, 50), Image.Resampling.BILINEAR)).transpose(
        2, 0, 1
    )
    assert np.abs(unrotated.astype(int) - reduced).mean() > 4 * REDUCED_DECODE_TOLERANCE["mean"]


def test_non_jpeg_is_decoded_in_full(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (800, 800), (1, 2, 3)).save(path)
    with Image.open(path) as image:
        assert reduced_jpeg_decode(image, (64, 64)) is None
