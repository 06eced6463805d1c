"""The base of datasets stored as image files: list the files, check them all, decode once.

Subclasses only list files and labels (:meth:`FileDataModule.list_files`). This class
decodes every file before training starts (into the decode cache, or a decode-only scan in
streaming mode), stops on undecodable files or drops and reports them, and hands uint8
splits to :class:`~imgcls.data.datamodule.ImageDataModule`.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from imgcls import console
from imgcls.data.arrays import ImageArrays
from imgcls.data.batch_jpeg import choose_decoder
from imgcls.data.datamodule import DatasetSplits, ImageDataModule
from imgcls.data.decode_cache import BadFile, BadImagesError, DecodeCache
from imgcls.data.overlap import check_overlaps, find_overlaps
from imgcls.data.streaming import StreamingImages
from imgcls.display import display_name

BAD_FILES_REPORT = "bad_files.csv"


@dataclass
class FileSamples:
    """Image files and their integer labels."""

    paths: list[str]
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.paths = [str(path) for path in self.paths]
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} files but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices) -> FileSamples:
        indices = np.asarray(indices, dtype=np.int64)
        return FileSamples([self.paths[i] for i in indices], self.labels[indices])


@dataclass
class FileSplits:
    """What a file dataset lists; the same shape as :class:`DatasetSplits`, with files."""

    train: FileSamples
    val: FileSamples
    test: FileSamples
    class_names: list[str]
    extra_tests: dict[str, FileSamples] = field(default_factory=dict)


class FileDataModule(ImageDataModule):
    """Args (each a ``data.*`` config key):
    image_size: ``[H, W]`` every image is resized to.
    channels: 1 (grayscale) or 3 (RGB); every image mode is converted to it.
    cache: decode once into ``cache_dir`` (memory-mapped); ``false`` decodes each item
        in the DataLoader workers every epoch (datasets too large to cache).
    cache_dir: where decoded images are kept; safe to delete.
    decode_workers: threads that decode while the cache is built; ``auto``: one per usable CPU.
    decoder: ``auto`` | ``pil`` | ``nvjpeg`` (:func:`~imgcls.data.batch_jpeg.choose_decoder`),
        for training on ``training_accelerator`` (``trainer.accelerator``).
    skip_bad: drop undecodable files (listed in ``<report_dir>/bad_files.csv``) instead
        of stopping; still stops when more than ``max_bad_fraction`` of them are bad.
    report_dir: where ``bad_files.csv`` goes (the run directory).
    progress: show a progress bar while decoding.
    """

    def __init__(
        self,
        image_size: tuple[int, int] = (64, 64),
        channels: int = 3,
        cache: bool = True,
        cache_dir: str | Path = "data/.cache/decoded",
        decode_workers: int | str = "auto",
        decoder: str = "auto",
        training_accelerator: str = "auto",
        skip_bad: bool = False,
        max_bad_fraction: float = 0.01,
        report_dir: str | Path | None = None,
        progress: bool = True,
        allow_overlap: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.allow_overlap = bool(allow_overlap)
        if len(image_size) != 2:
            raise ValueError(f"data.image_size must be [H, W], got {list(image_size)}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        self.cache = bool(cache)
        self.decoder = DecodeCache(
            cache_dir,
            workers=decode_workers,
            progress=progress,
            decoder=choose_decoder(decoder, training_accelerator),
        )
        self.skip_bad = bool(skip_bad)
        self.max_bad_fraction = float(max_bad_fraction)
        self.report_dir = Path(report_dir) if report_dir is not None else None
        self.bad_files: list[BadFile] = []
        # Each split's files in the order of its images (bad files dropped), once set up.
        self._split_paths: dict[str, list[str]] = {}

    # --- what subclasses provide -------------------------------------------------------
    def list_files(self) -> FileSplits:
        raise NotImplementedError

    # --- files to arrays ---------------------------------------------------------------
    def prepare_data(self) -> None:
        """Decode every file into the cache (once per node; Lightning calls this on one
        process of each machine). :meth:`setup` then only reads the cache."""
        if self.cache:
            for paths in self._pools(self._listed()).values():
                self.decoder.decode(paths, self.image_size, self.channels)

    def _listed(self) -> FileSplits:
        if getattr(self, "_files", None) is None:
            self._files = self.list_files()
        return self._files

    @staticmethod
    def _pools(files: FileSplits) -> dict[str, list[str]]:
        # One decode for train+val+test (sorted, so another split seed reuses it); one per
        # extra test set, so adding one does not decode the main data again.
        groups = {
            "main": [files.train, files.val, files.test],
            **{n: [s] for n, s in files.extra_tests.items()},
        }
        return {name: sorted({path for part in parts for path in part.paths}) for name, parts in groups.items()}

    def load_splits(self) -> DatasetSplits:
        files = self._listed()
        pools = self._pools(files)
        decoded = {name: self._decode(paths) for name, paths in pools.items()}
        bad = {pool[i]: item for name, pool in pools.items() for i, item in decoded[name][1].items()}
        self._bad_paths = set(bad)
        self._handle_bad(bad, total=sum(len(pool) for pool in pools.values()))

        def arrays(samples: FileSamples, pool_name: str, split: str):
            keep = [i for i, path in enumerate(samples.paths) if path not in bad]
            samples = samples.subset(keep)
            self._split_paths[split] = samples.paths
            if not self.cache:
                return StreamingImages(samples.paths, samples.labels, self.image_size, self.channels)
            position = {path: i for i, path in enumerate(pools[pool_name])}
            rows = np.array([position[path] for path in samples.paths], dtype=np.int64)
            # Copied out of the memmap: a split is sliced every epoch, in memory.
            images = np.ascontiguousarray(decoded[pool_name][0][rows])
            return ImageArrays(torch.from_numpy(images), torch.from_numpy(samples.labels))

        splits = DatasetSplits(
            train=arrays(files.train, "main", "train"),
            val=arrays(files.val, "main", "val"),
            test=arrays(files.test, "main", "test"),
            class_names=list(files.class_names),
            extra_tests={name: arrays(samples, name, name) for name, samples in files.extra_tests.items()},
        )
        self._check_overlaps(files, splits)
        return splits

    def sample_paths(self, split: str) -> list[str] | None:
        if self.splits is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its files are known")
        return self._split_paths[split]

    def _split_content_key(self, name: str) -> bytes:
        """A split's files as (path, size, modification time): listed, not read, so streaming
        datasets too large to cache are fingerprinted in a moment."""
        entries = []
        for path in self.sample_paths(name):
            stat = os.stat(path)
            entries.append(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}")
        return "\n".join(entries).encode("utf-8", "surrogateescape")

    def _check_overlaps(self, files: FileSplits, splits: DatasetSplits) -> None:
        kept = {
            name: [p for p in samples.paths if p not in self._bad_paths]
            for name, samples in {"train": files.train, "val": files.val, "test": files.test,
                                  **files.extra_tests}.items()
        }
        arrays = {"train": splits.train, "val": splits.val, "test": splits.test, **splits.extra_tests}
        # Pixels too where they are in memory (the decode cache); file names alone otherwise.
        images = {name: data.images.numpy() for name, data in arrays.items()} if self.cache else None
        self.overlaps = find_overlaps(kept, images)
        check_overlaps(self.overlaps, self.allow_overlap)

    def _decode(self, paths: list[str]) -> tuple[np.ndarray | None, dict[int, BadFile]]:
        """Every file fully decoded: (the cached images, or None when streaming; the bad ones)."""
        if self.cache:
            decoded = self.decoder.decode(paths, self.image_size, self.channels)
            return decoded.images, decoded.bad
        return None, self.decoder.scan(paths, self.image_size, self.channels)

    def _handle_bad(self, bad: dict[str, BadFile], total: int) -> None:
        self.bad_files = list(bad.values())
        if not bad:
            return
        if not self.skip_bad:
            raise BadImagesError(
                self.bad_files,
                total,
                hint="\nFix or remove them, or set data.skip_bad=true to train without them.",
            )
        report = self._write_report()
        fraction = len(bad) / max(total, 1)
        if fraction > self.max_bad_fraction:
            raise BadImagesError(
                self.bad_files,
                total,
                hint=f"\nThat is {fraction:.1%} of the files, above data.max_bad_fraction="
                f"{self.max_bad_fraction:g}; listed in {report}.",
            )
        console.warn(f"Skipping {len(bad)} of {total} image files that cannot be decoded; listed in {report}")

    def _write_report(self) -> Path:
        report = (self.report_dir or Path.cwd()) / BAD_FILES_REPORT
        report.parent.mkdir(parents=True, exist_ok=True)
        with report.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "reason"])
            writer.writerows((display_name(item.path), display_name(item.reason)) for item in self.bad_files)
        return report
