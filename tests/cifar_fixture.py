"""A small CIFAR-10-format dataset on disk, made from real images (scikit-learn's digits).

Same layout as the official ``cifar-10-batches-py``: Python-2-style pickles with bytes
keys, ``data`` uint8 [N, 3072] channel-major, ``labels`` a list of ints, and the class
names in ``batches.meta``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def cifar_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` real digits, upsampled to 32x32 and tinted: uint8 [N, 3072] and labels [N]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(digits.target), size=count, replace=False)
    gray = torch.from_numpy(digits.images[pick] / 16.0).float()[:, None]
    gray = F.interpolate(gray, size=(32, 32), mode="bilinear", align_corners=False)[:, 0].numpy()
    tint = rng.uniform(0.4, 1.0, size=(count, 3, 1, 1))
    background = rng.uniform(0.0, 0.3, size=(count, 3, 1, 1))
    rgb = background + (1 - background) * tint * gray[:, None]
    data = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8).reshape(count, -1)
    return data, digits.target[pick].astype(np.int64)


def write_batch(path: Path, data: np.ndarray, labels, protocol: int = 2, bytes_keys: bool = True) -> None:
    content = {"batch_label": "fixture", "data": data, "labels": [int(x) for x in labels]}
    _dump(path, content, protocol, bytes_keys)


def write_meta(path: Path, names=CLASS_NAMES, protocol: int = 2, bytes_keys: bool = True) -> None:
    content = {"label_names": [n.encode() if bytes_keys else n for n in names], "num_vis": 3072}
    _dump(path, content, protocol, bytes_keys)


def write_cifar10(root: Path, per_batch: int = 200, protocol: int = 2, bytes_keys: bool = True) -> Path:
    """Write ``root/cifar-10-batches-py`` with 5 training batches and a test batch; returns it."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    data, labels = cifar_images(6 * per_batch, seed=0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        part = slice(i * per_batch, (i + 1) * per_batch)
        write_batch(folder / name, data[part], labels[part], protocol, bytes_keys)
    write_meta(folder / "batches.meta", protocol=protocol, bytes_keys=bytes_keys)
    return folder


def _dump(path: Path, content: dict, protocol: int, bytes_keys: bool) -> None:
    if bytes_keys:
        content = {key.encode(): value for key, value in content.items()}
    with open(path, "wb") as file:
        pickle.dump(content, file, protocol=protocol)
