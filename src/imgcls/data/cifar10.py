"""CIFAR-10 (seed 002) from the standard ``cifar-10-batches-py`` pickles, held in memory as uint8.

The files are read here rather than through ``torchvision.datasets.CIFAR10``, which refuses
any file whose MD5 differs from the official one: a re-pack in the same format loads too.
Each file's layout is checked, so a truncated pickle, a wrong shape or an out-of-range
label stops the run before training, naming the file.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from imgcls.data.arrays import ImageArrays
from imgcls.data.datamodule import DatasetSplits, ImageDataModule
from imgcls.data.safe_pickle import ArrayUnpickler
from imgcls.errors import UserError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
IMAGE_SHAPE = (3, 32, 32)


class CifarFormatError(UserError, ValueError):
    """A CIFAR file that is missing or not in the ``cifar-10-batches-py`` format."""


class Cifar10DataModule(ImageDataModule):
    """CIFAR-10 with a seeded, stratified train/val split of the 50,000 training images.

    Args:
        data_dir: the ``cifar-10-batches-py`` folder, or the folder that contains it.
        download: fetch and extract ``url`` into ``data_dir`` when the files are missing.
        url: the archive to download (torchvision's downloader; no checksum is imposed).
        val_size: validation images taken from the training files: a count, or a fraction < 1.
        split_seed: seed of the train/val split.
    """

    def __init__(
        self,
        data_dir: str,
        download: bool = False,
        url: str = CIFAR10_URL,
        val_size: int | float = 5000,
        split_seed: int = 43,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)
        self.download = download
        self.url = url
        self.val_size = val_size
        self.split_seed = split_seed

    def prepare_data(self) -> None:
        """Download the archive when it is missing and ``download`` is set (once per node)."""
        folder = self._location()
        if self.download and _missing(folder):
            _download(self.url, self.data_dir)

    def load_splits(self) -> DatasetSplits:
        folder = self._folder()
        class_names = read_label_names(folder / META_FILE)
        train = _concat([read_batch(folder / name, len(class_names)) for name in TRAIN_FILES])
        test = read_batch(folder / TEST_FILE, len(class_names))
        train_index, val_index = self._split(train.labels.numpy())
        return DatasetSplits(
            train=train.subset(train_index),
            val=train.subset(val_index),
            test=test,
            class_names=class_names,
        )

    def _location(self) -> Path:
        return self.data_dir if (self.data_dir / META_FILE).exists() else self.data_dir / FOLDER

    def _folder(self) -> Path:
        folder = self._location()
        missing = _missing(folder)
        if missing:
            raise FileNotFoundError(
                f"CIFAR-10 files not found: {folder} lacks {', '.join(missing)}. Download {self.url} and "
                f"extract it into {self.data_dir} (it unpacks as {FOLDER}/ with data_batch_1..5, "
                f"{TEST_FILE} and {META_FILE}), or set data.data_dir to the folder that has them, or run "
                "with data.download=true on a machine that is online."
            )
        return folder

    def _split(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = self.val_size
        n_val = round(size * len(labels)) if isinstance(size, float) and size < 1 else int(size)
        if not 0 < n_val < len(labels):
            raise ValueError(
                f"data.val_size={size} must leave at least one image each for train and val "
                f"({len(labels)} training images)"
            )
        counts = np.bincount(labels)
        stratify = labels if counts[counts > 0].min() >= 2 and n_val >= np.count_nonzero(counts) else None
        train_index, val_index = train_test_split(
            np.arange(len(labels)), test_size=n_val, random_state=self.split_seed, stratify=stratify
        )
        return np.sort(train_index), np.sort(val_index)


def read_label_names(path: Path) -> list[str]:
    """The class names in ``batches.meta`` (key ``label_names``)."""
    meta = _unpickle(path)
    names = meta.get("label_names")
    if not isinstance(names, list | tuple) or not names:
        raise CifarFormatError(f"{path}: expected a non-empty 'label_names' list, found keys {sorted(meta)}")
    return [name.decode() if isinstance(name, bytes) else str(name) for name in names]


def read_batch(path: Path, num_classes: int) -> ImageArrays:
    """One batch file: ``data`` uint8 ``[N, 3072]`` (channel-major 3x32x32) and ``labels`` ``[N]``."""
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise CifarFormatError(f"{path}: expected keys 'data' and 'labels', found {sorted(batch)}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] != np.prod(IMAGE_SHAPE) or data.dtype != np.uint8:
        raise CifarFormatError(
            f"{path}: 'data' must be uint8 [N, {np.prod(IMAGE_SHAPE)}], found {data.dtype} {list(data.shape)}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise CifarFormatError(
            f"{path}: 'labels' must be {len(data)} integers (one per image), found {labels.dtype} "
            f"{list(labels.shape)}"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise CifarFormatError(
            f"{path}: labels must be in [0, {num_classes - 1}] ({num_classes} classes in {META_FILE}), "
            f"found {labels[bad[0]]} at index {bad[0]} ({len(bad)} out of range)"
        )
    images = torch.from_numpy(data.reshape(-1, *IMAGE_SHAPE).copy())
    return ImageArrays(images, torch.from_numpy(labels.astype(np.int64)))


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            # The official files are Python 2 pickles: their keys and names are bytes.
            content = ArrayUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as error:
        raise CifarFormatError(
            f"{path}: not a readable CIFAR pickle, truncated or corrupt ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(content, dict):
        raise CifarFormatError(f"{path}: expected a dict, found {type(content).__name__}")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in content.items()}


def _missing(folder: Path) -> list[str]:
    return [name for name in (*TRAIN_FILES, TEST_FILE, META_FILE) if not (folder / name).is_file()]


def _download(url: str, data_dir: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(url, download_root=str(data_dir))
    except OSError as error:  # URLError, refused connections and timeouts are OSErrors
        raise FileNotFoundError(
            f"could not download CIFAR-10 from {url} ({type(error).__name__}: {error}). On a machine "
            f"without internet, download the archive elsewhere and extract it into {data_dir}."
        ) from error


def _concat(parts: list[ImageArrays]) -> ImageArrays:
    return ImageArrays(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]))
