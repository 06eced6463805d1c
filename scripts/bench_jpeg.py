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

Then the cache build's decoders on large JPEGs (--large, default 2048x1536, upscaled from the
same photos, to --large-target): ``pil full`` (``load_image(reduced=False)``), ``pil
reduced`` (the default: DCT-scaled decode, ``image_io.reduced_jpeg_decode``) and ``nvjpeg``
(``data.batch_jpeg``, when CUDA is available), each as images/s and images/s per decoding
thread (--workers), with the mean and largest absolute difference of their pixels from pil
full's (0-255 levels) on these files and the 512x512 ones.
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
from imgcls.data.decode_cache import _Decoder
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


def large_jpegs(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` JPEGs of ``size`` = (W, H): the sample photos cropped to its aspect and upscaled."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    paths = [folder / f"large_{size[0]}x{size[1]}" / f"{i:04d}.jpg" for i in range(count)]
    if all(path.exists() for path in paths):
        return paths
    photos = load_sample_images().images
    for i, path in enumerate(paths):
        photo = Image.fromarray(photos[i % len(photos)])
        height = int(photo.width * size[1] / size[0])
        top = (i * 7) % max(1, photo.height - height + 1)
        crop = photo.crop((0, top, photo.width, top + height)).resize(size, Image.Resampling.LANCZOS)
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path, quality=90)
    return paths


class DecoderBuild:
    """One cache build's decoding of ``paths`` to ``size`` with ``workers`` threads."""

    def __init__(self, paths: list[Path], size: tuple[int, int], workers: int, kind: str):
        self.paths, self.size, self.workers, self.kind = [str(p) for p in paths], size, workers, kind

    def decode(self) -> list[np.ndarray]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.workers) as pool:
            if self.kind == "nvjpeg":
                from imgcls.data.batch_jpeg import BatchJpegDecoder

                fallback = _Decoder(self.size, 3)
                results = list(BatchJpegDecoder(self.size, 3, fallback, "cuda").decode(self.paths, pool.map))
                torch.cuda.synchronize()
                return results
            reduced = self.kind == "pil reduced"
            return list(pool.map(lambda path: load_image(path, 3, self.size, reduced=reduced), self.paths))

    def epoch(self) -> float:
        start = clock()
        self.decode()
        return clock() - start


def agreement(reference: list[np.ndarray], other: list[np.ndarray]) -> dict:
    differences = [
        np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(reference, other, strict=True)
    ]
    return {
        "mean_abs": float(np.mean([d.mean() for d in differences])),
        "worst_image_mean_abs": float(max(d.mean() for d in differences)),
        "max_abs": int(max(d.max() for d in differences)),
    }


def decoder_benchmark(args, small_paths: list[Path]) -> dict:
    large = tuple(int(side) for side in args.large.split("x"))
    target = (args.large_target, args.large_target)
    paths = large_jpegs(args.folder, args.large_images, large)
    kinds = ["pil full", "pil reduced"] + (["nvjpeg"] if torch.cuda.is_available() else [])
    variants = {kind: DecoderBuild(paths, target, args.workers, kind) for kind in kinds}
    timings = interleave(variants, warmup=1, rounds=args.decoder_rounds, work=len(paths))
    results = timings.results()
    per_thread = {
        kind: {k: v / args.workers for k, v in r.items() if k != "runs"} for kind, r in results.items()
    }
    agree = {}
    for name, files, size in [("large", paths, target), ("512x512", small_paths[:64], SIZE)]:
        reference = DecoderBuild(files, size, args.workers, "pil full").decode()
        agree[name] = {
            kind: agreement(reference, DecoderBuild(files, size, args.workers, kind).decode())
            for kind in kinds[1:]
        }
    return {
        "size": f"{large[0]}x{large[1]} JPEG -> {target[0]}x{target[1]}",
        "images": len(paths),
        "images_per_s": results,
        "images_per_s_per_thread": per_thread,
        "pil reduced/pil full": ratio(results, "pil reduced", "pil full"),
        **({"nvjpeg/pil full": ratio(results, "nvjpeg", "pil full")} if "nvjpeg" in results else {}),
        "agreement_with_pil_full": agree,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="decoding workers for both pipelines")
    parser.add_argument("--large", default="2048x1536", help="WxH of the decoder benchmark's JPEGs")
    parser.add_argument("--large-target", type=int, default=512, help="their square target size")
    parser.add_argument("--large-images", type=int, default=48)
    parser.add_argument("--decoder-rounds", type=int, default=3)
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
    print("\ndecoders (the cache build):")
    decoders = decoder_benchmark(args, paths)
    report["benchmarks"]["decoders"] = {
        "images_per_s": decoders["images_per_s"],
        **{key: value for key, value in decoders.items() if "/" in key},
    }
    report["decoders"] = decoders
    print_table(report["benchmarks"])
    print(f"\nepoch 1: cache {seconds['cache'][0]:.2f}s (builds it) vs decode {seconds['decode'][0]:.2f}s")
    print(f"\ndecoders ({decoders['size']}, {args.workers} threads): images/s per thread")
    for kind, speed in decoders["images_per_s_per_thread"].items():
        print(f"  {kind:<12} {speed['median']:8,.1f}")
    print("agreement with pil full (0-255 levels): mean abs / worst image's mean / max")
    for name, kinds in decoders["agreement_with_pil_full"].items():
        for kind, figures in kinds.items():
            print(
                f"  {name:<8} {kind:<12} {figures['mean_abs']:.2f} / {figures['worst_image_mean_abs']:.2f} / {figures['max_abs']}"
            )
    write_report(report, args.out, "bench_jpeg")
    return report


if __name__ == "__main__":
    main()
