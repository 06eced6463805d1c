"""Decoding one image file into a uint8 ``[C, H, W]`` array, the same way everywhere.

Used by every file-based dataset, the decode cache, prediction and inspection, so that
an image reads identically in training and at inference.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from imgcls.errors import UserError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


class ImageDecodeError(UserError, ValueError):
    """A file that is not a decodable image: its path and the reason are in the message.

    ``transient``: the file could not be read at all (permissions, a missing link target,
    an I/O error), which may not be so next time; a decode failure of its bytes is not."""

    def __init__(self, path: str | Path, reason: str, transient: bool = False):
        self.path, self.reason, self.transient = str(path), reason, transient
        super().__init__(f"{path}: {reason}")


def is_image_file(path: str | Path) -> bool:
    """True for an image suffix (any case) that is not a hidden or macOS resource-fork file."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def load_image(
    path: str | Path, channels: int = 3, size: tuple[int, int] | None = None, reduced: bool = True
) -> np.ndarray:
    """Fully decode ``path`` to uint8 ``[channels, H, W]``, resized to ``size`` = (H, W) if given.

    ``reduced``: a JPEG at least twice ``size`` on both sides is decoded at 1/2, 1/4 or 1/8
    scale (the largest that stays >= ``size``; :func:`reduced_jpeg_decode`) and then resized,
    about 3x faster for a 2048x1536 photo to 512x512; the pixels agree with a full decode +
    resize within :data:`REDUCED_DECODE_TOLERANCE`.

    EXIF orientation is applied; RGBA/LA/P transparency is composited on white; CMYK is
    converted to RGB; 16-bit images are rescaled to 8 bits (not clipped). Any failure,
    including a truncated file or one above PIL's decompression-bomb limit, raises
    :class:`ImageDecodeError` naming the file.
    """
    try:
        with Image.open(path) as image:
            _check_pixel_limit(image)
            draft = reduced_jpeg_decode(image, size) if reduced and size is not None else None
            image.load()  # a real decode: truncated data fails here, not in verify()
            if draft is not None:  # resized here, where the box is in this image's coordinates
                target, box = draft
                image = image.resize(target, Image.Resampling.BILINEAR, box=box, reducing_gap=None)
            image = ImageOps.exif_transpose(image)
            image = _to_mode(image, channels)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=None)
            array = np.asarray(image, dtype=np.uint8)
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(
            path, f"image is larger than PIL's decompression-bomb limit ({error})"
        ) from error
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as error:
        # Opening failed with an error number (EACCES, ENOENT, EIO...): the file was not read.
        # PIL's decode errors carry none.
        unread = isinstance(error, OSError) and error.errno is not None
        if unread and Path(path).is_symlink():
            reason = f"broken link or symlink loop ({error.strerror}: {os.readlink(path)})"
        elif unread:
            reason = f"cannot read file ({type(error).__name__}: {error})"
        else:
            reason = "empty file" if _is_empty(path) else f"cannot decode image ({type(error).__name__}: {error})"
        raise ImageDecodeError(path, reason, transient=unread) from error
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


# Mean and largest absolute difference (0-255 levels) a reduced-scale JPEG decode + resize
# may have from the full decode + resize; measured on scikit-image's and scikit-learn's
# photos at 32x32 to 224x224 (tests/test_image_io.py, README "Decode cache").
REDUCED_DECODE_TOLERANCE = {"mean": 3.5, "max": 48}

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # turned by 90 degrees: width and height swap


def reduced_jpeg_decode(image: Image.Image, size: tuple[int, int]) -> tuple[tuple[int, int], tuple] | None:
    """Have PIL decode a JPEG at the smallest DCT scale (1/2, 1/4, 1/8) that still leaves at
    least ``size`` = (H, W) after EXIF orientation (``Image.draft``). Returns the (W, H) to
    resize to before orientation and the box of the decoded image that holds the picture
    (the reduced image is rounded up to whole pixels); None when nothing is reduced."""
    if image.format != "JPEG":
        return None
    height, width = size
    if image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:
        height, width = width, height
    if image.width < 2 * width or image.height < 2 * height:
        return None
    drafted = image.draft(None, (width, height))
    return ((width, height), drafted[1]) if drafted else None


def _check_pixel_limit(image: Image.Image) -> None:
    """PIL only warns between its limit and twice it; refuse from the limit on. Checked
    here rather than with a warnings filter, which is process-global and not thread-safe
    (the decode cache decodes in threads)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        raise Image.DecompressionBombError(
            f"{image.width}x{image.height} = {image.width * image.height} pixels, limit {limit}"
        )


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max(initial=0) <= 65535 else values.max()
        image = Image.fromarray(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if values.max(initial=0) <= 1.0 else values.max()
        image = Image.fromarray(np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("L" if channels == 1 else "RGB")


def _is_empty(path: str | Path) -> bool:
    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False
