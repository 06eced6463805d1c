"""One row per image of a dataset: where it is, its split and class, its size, mode and hash.

A data module is described from its files when it can list them, else from its arrays:

* **File datasets** provide ``list_files()``, which lists without decoding anything and
  returns an object with ``train``, ``val`` and ``test`` (each with ``paths`` and integer
  ``labels``), ``class_names`` and optionally ``extra_tests`` (name -> the same). The
  catalog then holds the *original* files' sizes and modes, read from their headers.
  If ``list_files()`` raises (a CSV naming missing files, unknown labels, duplicate ids),
  its message is the inspection's finding.
* **Array datasets** (CIFAR-10, digits) are described from the splits ``setup()`` loads.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from imgcls.data.datamodule import DatasetSplits
from imgcls.display import display_name, display_names

COLUMNS = ["split", "label", "item", "height", "width", "mode", "bytes", "hash", "error"]
_CHANNEL_MODES = {1: "L", 3: "RGB"}


def named_splits(splits: DatasetSplits) -> dict:
    """train, val, test, then any extra test sets, by name."""
    return {"train": splits.train, "val": splits.val, "test": splits.test, **splits.extra_tests}


def file_catalog(listing, hash_contents: bool = True) -> pd.DataFrame:
    """A row per listed file, with the size and mode in its header (nothing is decoded)."""
    names = display_names(listing.class_names)
    rows = []
    parts = {"train": listing.train, "val": listing.val, "test": listing.test}
    for split, samples in {**parts, **dict(getattr(listing, "extra_tests", None) or {})}.items():
        for path, label in zip(samples.paths, np.asarray(samples.labels).tolist(), strict=True):
            name = names[label] if 0 <= label < len(names) else f"<label {label}>"
            rows.append({"split": split, "label": name, "item": str(path), **_header(Path(path))})
    catalog = pd.DataFrame(rows, columns=COLUMNS).astype({"hash": object, "error": object})
    if hash_contents:
        # Only files whose byte size another file shares can have the same content.
        candidates = catalog["error"].isna() & catalog.duplicated("bytes", keep=False)
        catalog.loc[candidates, "hash"] = [_file_hash(p) for p in catalog.loc[candidates, "item"]]
    # Shown only from here on: the files were read by their real names.
    catalog["item"] = display_names(catalog["item"])
    catalog["error"] = [None if pd.isna(error) else display_name(error) for error in catalog["error"]]
    return catalog


def array_catalog(splits: DatasetSplits, hash_contents: bool = True) -> pd.DataFrame:
    """A row per image held in memory; ``item`` is ``<split>[<index>]``."""
    frames, names = [], display_names(splits.class_names)
    for split, data in named_splits(splits).items():
        images = data.images.numpy()
        n, channels, height, width = images.shape
        flat = images.reshape(n, -1)
        frames.append(
            pd.DataFrame(
                {
                    "split": split,
                    "label": [names[i] for i in data.labels.tolist()],
                    "item": [f"{split}[{i}]" for i in range(n)],
                    "height": height,
                    "width": width,
                    "mode": _CHANNEL_MODES.get(channels, f"{channels} channels"),
                    "bytes": flat.shape[1],
                    "hash": [hashlib.sha256(row.tobytes()).hexdigest() for row in flat]
                    if hash_contents
                    else None,
                    "error": None,
                },
                columns=COLUMNS,
            )
        )
    return pd.concat(frames, ignore_index=True)


def _header(path: Path) -> dict:
    try:
        size = path.stat().st_size  # a symlink loop fails here (ELOOP), it does not hang
    except FileNotFoundError:
        return {"error": "broken link" if path.is_symlink() else "missing file"}
    except OSError as error:
        return {"error": f"cannot read: {error}"}
    try:
        with Image.open(path) as image:
            return {"height": image.height, "width": image.width, "mode": image.mode, "bytes": size}
    except Exception as error:  # noqa: BLE001 - any reason a header cannot be read is a finding
        return {"bytes": size, "error": f"not an image: {type(error).__name__}: {error}"}


def _file_hash(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
