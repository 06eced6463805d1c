"""A JPEG folder, epoch by epoch: decoding every epoch vs imgcls's decode cache.

    make bench-jpeg                 # or: python scripts/bench_jpeg.py --images 400 --epochs 4

The folder holds 512x512 JPEGs (crops of scikit-learn's two sample photos, written once
under --folder); both pipelines deliver them resized to 224x224 as uint8 batches:

    decode   a per-item Dataset that decodes and resizes each file every epoch
             (``imgcls.data.image_io.load_image``, in a DataLoader)
    cache    ``DecodeCache.load`` (the first epoch decodes into a memory-mapped array, with
             the same ``load_image``), then batches sliced from that array

Both pipelines run in one process, epoch by epoch, interleaved (scripts/bench_harness.py),
on the wall clock; the report is each epoch's time, epoch 1's (the cache is built in it) and
the images/s of epochs 2.. with the median, min and max of their per-epoch ratio cache/decode.
The input pipeline alone is timed: a model's step would be the same in both.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from bench_harness import clock, environment, interleave, print_table, ratio, write_report

from imgcls.data.arrays import ImageArrays, keep_batch
from imgcls.data.image_io import load_image

REPO = Path(__file__).resolve().parents[1]

SIZE = (224, 224)
SOURCE_SIZE = 512


def jpeg_folder(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` 512x512 JPEGs in two class folders, written once and reused."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    paths = [folder / f"class{i % 2}" / f"{i:05d}.jpg" for i in range(count)]
    if all(path.exists() for path in paths):
        return paths
    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for i, path in enumerate(paths):
        photo = Image.fromarray(photos[i % len(photos)])
        side = int(rng.integers(300, min(photo.size) + 1))
        left = int(rng.integers(photo.width - side + 1))
        top = int(rng.integers(photo.height - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((SOURCE_SIZE, SOURCE_SIZE))
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path, quality=90)
    return paths


class DecodedFiles(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return torch.from_numpy(load_image(self.paths[index], channels=3, size=SIZE)), index % 2


class DecodeEveryEpoch:
    def __init__(self, paths: list[Path], batch_size: int, workers: int):
        self.loader = torch.utils.data.DataLoader(
            DecodedFiles(paths), batch_size=batch_size, shuffle=True, num_workers=workers
        )

    def epoch(self) -> float:
        start = clock()
        for _images, _labels in self.loader:
            pass
        return clock() - start


class Cached:
    """The decode cache: its first epoch builds the entry (a fresh cache directory)."""

    def __init__(self, paths: list[Path], batch_size: int, cache_dir: Path, workers: int):
        from imgcls.data.decode_cache import DecodeCache

        self.cache = DecodeCache(cache_dir, workers=max(1, workers), progress=False)
        self.paths, self.batch_size = paths, batch_size
        self.loader = None

    def epoch(self) -> float:
        start = clock()
        if self.loader is None:
            with warnings.catch_warnings():  # the memmap is read-only, and only ever read
                warnings.simplefilter("ignore", UserWarning)
                images = torch.from_numpy(self.cache.load(self.paths, SIZE, channels=3))
            labels = torch.arange(len(self.paths)) % 2
            self.loader = torch.utils.data.DataLoader(
                ImageArrays(images, labels), batch_size=self.batch_size, shuffle=True, collate_fn=keep_batch
            )
        for _images, _labels in self.loader:
            pass
        return clock() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="decoding workers for both pipelines")
    parser.add_argument("--folder", type=Path, default=REPO / "outputs" / "bench" / "jpeg_folder")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench")
    args = parser.parse_args(argv)

    if args.epochs < 2:
        parser.error("--epochs must be 2 or more: epoch 1 builds the cache")

    paths = jpeg_folder(args.folder, args.images)
    cache_dir = Path(tempfile.mkdtemp(prefix="imgcls_decode_cache_"))
    variants = {
        "decode": DecodeEveryEpoch(paths, args.batch_size, args.workers),
        "cache": Cached(paths, args.batch_size, cache_dir, args.workers),
    }
    try:  # epoch 1 (building the cache) is the warm-up round
        timings = interleave(variants, warmup=1, rounds=args.epochs - 1, work=args.images)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    results = timings.results()
    seconds = timings.seconds
    report = {
        "images": args.images,
        "size": f"{SOURCE_SIZE}x{SOURCE_SIZE} JPEG -> {SIZE[0]}x{SIZE[1]}",
        "workers": args.workers,
        "environment": environment(),
        "epoch_seconds": seconds,
        "epoch1_cache/decode": seconds["cache"][0] / seconds["decode"][0],
        "benchmarks": {
            "jpeg epochs 2+": {"images_per_s": results, "cache/decode": ratio(results, "cache", "decode")}
        },
    }
    print_table(report["benchmarks"])
    print(f"\nepoch 1: cache {seconds['cache'][0]:.2f}s (builds it) vs decode {seconds['decode'][0]:.2f}s")
    write_report(report, args.out, "bench_jpeg")
    return report


if __name__ == "__main__":
    main()
