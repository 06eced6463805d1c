"""Batched JPEG decoding with torchvision (nvJPEG on a CUDA device), for building the decode cache.

``data.decoder``: ``pil`` decodes each file with :func:`~imgcls.data.image_io.load_image`;
``nvjpeg`` decodes batches of plain RGB/grayscale JPEGs with ``torchvision.io.decode_jpeg``
on the GPU and resizes them there (bilinear, antialiased, as PIL does); every other file
(PNG, CMYK JPEG, one with an EXIF rotation, which decode_jpeg applies only on the CPU, one
above PIL's pixel limit, one that fails to decode) goes through ``load_image``, which also
names what is wrong with it. (torchvision 0.29 deprecates its decoders for TorchCodec's.) ``auto``: nvjpeg when training runs
on CUDA, else pil. The pixels agree with PIL's within :data:`NVJPEG_TOLERANCE`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from imgcls.config import ConfigError
from imgcls.data.image_io import REDUCED_DECODE_TOLERANCE

DECODERS = ("auto", "pil", "nvjpeg")
# Mean and largest absolute difference (0-255 levels) from load_image's pixels: these are
# decoded at full scale, load_image's at reduced scale (image_io.REDUCED_DECODE_TOLERANCE).
# On the CPU, decode_jpeg + this resize is within 0.7 / 6 of PIL's full decode + resize.
NVJPEG_TOLERANCE = REDUCED_DECODE_TOLERANCE
_EXIF_ORIENTATION = 0x0112
BATCH = 64  # files per decode_jpeg call: enough to keep nvJPEG busy, little memory


def choose_decoder(setting: str, accelerator: str, cuda_available: Callable[[], bool] | None = None) -> str:
    """``pil`` or ``nvjpeg`` for ``data.decoder=setting`` when training on ``accelerator``
    (``trainer.accelerator``: cpu, gpu, cuda, auto, ...)."""
    if setting not in DECODERS:
        raise ConfigError(f"data.decoder={setting!r} must be one of {', '.join(DECODERS)}")
    if setting == "pil":
        return "pil"
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available
    on_cuda = str(accelerator) in ("gpu", "cuda", "auto") and cuda_available()
    if setting == "nvjpeg" and not on_cuda:
        raise ConfigError(
            f"data.decoder=nvjpeg needs training on a CUDA GPU (trainer.accelerator={accelerator}, "
            f"CUDA {'available' if cuda_available() else 'not available'}); use data.decoder=auto or pil"
        )
    return "nvjpeg" if on_cuda else "pil"


class BatchJpegDecoder:
    """Decodes files in order, batches of plain JPEGs with torchvision on ``device``, the
    rest with ``fallback`` (one file to an array or a BadFile, run by ``map``)."""

    def __init__(self, size: tuple[int, int], channels: int, fallback: Callable, device: str = "cuda"):
        self.size, self.channels, self.fallback, self.device = tuple(size), int(channels), fallback, device

    def decode(self, paths: Sequence[str | Path], map_: Callable = map) -> Iterator:
        """Each file's result (uint8 ``[C, H, W]`` or the fallback's BadFile), in order."""
        for start in range(0, len(paths), BATCH):
            chunk = list(paths[start : start + BATCH])
            plain = [i for i, path in enumerate(chunk) if _plain_jpeg(path)]
            results: list = [None] * len(chunk)
            try:
                for i, array in zip(plain, self._decode_batch([chunk[i] for i in plain]), strict=True):
                    results[i] = array
            except (RuntimeError, ValueError, OSError):
                pass  # one bad file fails the batch: PIL decodes them one by one and names it
            rest = [i for i, result in enumerate(results) if result is None]
            for i, result in zip(rest, map_(self.fallback, [chunk[i] for i in rest]), strict=True):
                results[i] = result
            yield from results

    def _decode_batch(self, paths: list) -> list[np.ndarray]:
        if not paths:
            return []
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg, read_file

        mode = ImageReadMode.RGB if self.channels == 3 else ImageReadMode.GRAY
        encoded = [read_file(str(path)) for path in paths]
        images = decode_jpeg(encoded, mode=mode, device=self.device)
        arrays = []
        for image in images:
            if tuple(image.shape[-2:]) != self.size:
                resized = torch.nn.functional.interpolate(
                    image[None].float(), size=self.size, mode="bilinear", antialias=True, align_corners=False
                )
                image = resized[0].round_().clamp_(0, 255).to(torch.uint8)
            arrays.append(image.cpu().numpy())
        return arrays


def _plain_jpeg(path: str | Path) -> bool:
    """A JPEG that decode_jpeg handles as PIL would: RGB or grayscale, not EXIF-rotated,
    within PIL's pixel limit (reads the header only; anything odd is left to PIL, which
    reports it)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            limit = Image.MAX_IMAGE_PIXELS
            return (
                image.format == "JPEG"
                and image.mode in ("RGB", "L")
                and image.getexif().get(_EXIF_ORIENTATION, 1) == 1
                and not (limit and image.width * image.height > limit)
            )
    except Exception:  # noqa: BLE001 - any trouble: PIL's path decodes it and says what is wrong
        return False
