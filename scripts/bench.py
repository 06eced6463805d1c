"""Training throughput of imgcls against a hand-written loop and the students' PIL pipeline.

    make bench                      # the Makefile sets the environment this needs (see below)
    python scripts/bench.py --models cnn --rounds 4 [config overrides, e.g. trainer.precision=bf16-mixed]

Three ways to train the same net on the same CIFAR-shaped data in the same precision:

    (a) handwritten  a minimal PyTorch loop over an in-memory uint8 tensor, batched augmentation,
                     with imgcls's speed options (memory format, compile) as the config sets them
    (b) imgcls       ``imgcls.training.run.train`` on the composed ``conf/``, with its defaults:
                     loggers (TensorBoard + CSV), checkpointing, metrics, progress bar, fused steps
    (c) students     seed 002's pipeline as written: per-item PIL images, torchvision transforms
                     (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize)
                     in a DataLoader, the net in torch's default memory format

So b/a is what the framework costs over the same work done by hand, and b/c what a user
gains over the notebook they come from. With no model, the input pipelines alone are
compared too (imgcls's batched uint8 path vs (c)'s).

The variants run interleaved in one process, one training epoch each per round, so a
neighbour's load hits them all alike; the report is the median (and min/max) images/s
over the rounds after the warm-up, and the median of the per-round ratios b/a and b/c.
Everything runs in the main thread: (b)'s fit drives the rounds, a callback running the
other variants' epochs at each of its epoch starts. Each time is the training part of an
epoch (for (b), ``on_train_epoch_start`` to validation).

Timings on shared CPUs need ``OMP_PROC_BIND=close OMP_PLACES=cores`` and large
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` set when the process starts
(``make bench`` does); without them expect 10x dips and +-15% noise. On a machine that
other jobs keep busy, ``--threads 1 --clock cpu`` times each variant by this process's CPU
time instead of the wall clock, which the neighbours disturb much less.

A last part compares the speed options (channels_last, bf16 autocast, ``--compile``) on
the hand-written loop, so their effect shows without any framework around them.

The data are 32x32 crops of scikit-learn's two sample photos at random scales and places,
with balanced random labels: real image statistics, CIFAR's shape, nothing to download.
Throughput does not depend on what the labels mean.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from imgcls.config import register_resolvers
from imgcls.data.arrays import ImageArrays
from imgcls.data.augment import BatchAugment
from imgcls.data.datamodule import DatasetSplits, ImageDataModule
from imgcls.models.classifier import build_net, has_convolutions
from imgcls.training.optimization import build_optimizer
from imgcls.training.precision import resolve_precision

REPO = Path(__file__).resolve().parents[1]

NUM_CLASSES = 10
# The clock every variant is timed with: wall time (what a user waits), or this process's
# CPU time (--clock cpu), which a busy neighbour disturbs less when running one thread.
clock = time.perf_counter
CIFAR_AUGMENT = {"crop_padding": 4, "hflip": True}
DATA_TARGET = f"{__name__}.CifarShapedDataModule"
ROUNDS_TARGET = f"{__name__}.rounds_callback"
IMGCLS = "b_imgcls"


# --- data ---------------------------------------------------------------------------------
def cifar_shaped(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` uint8 ``[3, 32, 32]`` crops of real photos and balanced labels, reproducibly."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    images = np.empty((count, 32, 32, 3), dtype=np.uint8)
    for i in range(count):
        photo = photos[rng.integers(len(photos))]
        scale = int(rng.integers(1, 5))
        top = rng.integers(photo.shape[0] - 32 * scale + 1)
        left = rng.integers(photo.shape[1] - 32 * scale + 1)
        images[i] = photo[top : top + 32 * scale : scale, left : left + 32 * scale : scale]
    labels = rng.permutation(np.arange(count) % NUM_CLASSES)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


class CifarShapedDataModule(ImageDataModule):
    """The benchmark's data as an imgcls data module, so (b) runs the real data path."""

    def __init__(self, train_size: int, val_size: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.train_size, self.val_size, self.seed = train_size, val_size, seed

    def load_splits(self) -> DatasetSplits:
        images, labels = cifar_shaped(self.train_size + self.val_size, self.seed)
        everything = ImageArrays(images, labels)
        val = range(self.train_size, self.train_size + self.val_size)
        return DatasetSplits(
            train=everything.subset(range(self.train_size)),
            val=everything.subset(val),
            test=everything.subset(val),
            class_names=[f"class{k}" for k in range(NUM_CLASSES)],
        )


class PilImages(torch.utils.data.Dataset):
    """torchvision's CIFAR10 dataset, minus the download: HWC uint8 arrays, one PIL image per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def students_loader(images, labels, mean, std, batch_size: int, workers: int):
    from torchvision import transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    return torch.utils.data.DataLoader(
        PilImages(images, labels, transform),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


# --- settings shared by every variant -----------------------------------------------------
class Settings:
    """The model, optimizer and speed options of one composed config, for (a) and (c) to copy."""

    def __init__(self, cfg, device: torch.device):
        from omegaconf import OmegaConf

        self.cfg = cfg
        self.device = device
        self.net_config = OmegaConf.to_container(cfg.model.net, resolve=True)
        self.optimizer_config = OmegaConf.to_container(cfg.optimizer, resolve=True)
        self.batch_size = int(cfg.data.batch_size)
        setting = cfg.get("channels_last", False)
        self.channels_last = (
            has_convolutions(self._net()) if setting == "auto" else bool(setting)
        )  # as ImageClassifier resolves it
        self.compile = bool(cfg.get("compile", False))
        self.precision = resolve_precision(cfg)

    def autocast(self):
        dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype) if dtype else nullcontext()

    def _net(self) -> nn.Module:
        return build_net(self.net_config, [3, 32, 32], NUM_CLASSES).to(self.device)

    def model(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        net = self._net()
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(self.optimizer_config, net.parameters())
        return (torch.compile(net) if self.compile else net), optimizer

    def as_students_wrote_it(self) -> Settings:
        """The same model, optimizer and precision in seed 002's default memory format, uncompiled."""
        import copy

        students = copy.copy(self)
        students.channels_last, students.compile = False, False
        return students

    def describe(self) -> str:
        return f"precision={self.precision} channels_last={self.channels_last} compile={self.compile}"


def train_step(net, optimizer, criterion, settings: Settings, images, labels):
    if settings.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with settings.autocast():
        loss = criterion(net(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


# --- variants: each runs one training epoch per call and returns its seconds ---------------
class HandWritten:
    """(a) The reference: the loop a careful user writes by hand around uint8 tensors."""

    def __init__(self, settings: Settings, images, labels, mean, std, train: bool = True):
        self.settings, self.train = settings, train
        device = settings.device
        self.images, self.labels = images.to(device), labels.to(device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.augment = BatchAugment(**CIFAR_AUGMENT)
        if train:
            self.net, self.optimizer = settings.model()
            self.criterion = nn.CrossEntropyLoss()

    def epoch(self) -> float:
        start = clock()
        order = torch.randperm(len(self.labels), device=self.settings.device)
        for batch in order.split(self.settings.batch_size):
            images = (self.augment(self.images[batch]) - self.mean) / self.std
            if self.train:
                train_step(
                    self.net, self.optimizer, self.criterion, self.settings, images, self.labels[batch]
                )
        _synchronize(self.settings.device)
        return clock() - start


class Students:
    """(c) Seed 002's pipeline: per-item PIL transforms in a DataLoader, then the same step."""

    def __init__(self, settings: Settings, images, labels, mean, std, workers: int, train: bool = True):
        self.settings, self.train = settings, train
        self.loader = students_loader(images, labels, mean, std, settings.batch_size, workers)
        if train:
            self.net, self.optimizer = settings.model()
            self.criterion = nn.CrossEntropyLoss()

    def epoch(self) -> float:
        start = clock()
        device = self.settings.device
        for images, labels in self.loader:
            images, labels = images.to(device), labels.to(device)
            if self.train:
                train_step(self.net, self.optimizer, self.criterion, self.settings, images, labels)
        _synchronize(device)
        return clock() - start


class ImgclsData:
    """imgcls's input pipeline alone: its train loader, the transfer, the batched augmentation."""

    def __init__(self, datamodule: ImageDataModule, device: torch.device):
        self.datamodule, self.device = datamodule, device
        self.loader = datamodule.train_dataloader()
        self.mean = torch.tensor(datamodule.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(datamodule.std, device=device).view(1, -1, 1, 1)

    def epoch(self) -> float:
        start = clock()
        for images, _labels in self.loader:
            images = self.datamodule.augment(images.to(self.device))
            images = (images - self.mean) / self.std
        _synchronize(self.device)
        return clock() - start


class Rounds(Callback):
    """Runs the benchmark's rounds from inside imgcls's fit, in the main thread: a fit run in a
    second thread measured 5-7% slower here for logistic regression (its own OpenMP team and
    malloc arena), which would bias b/a.

    Each training epoch of the fit is one round. At its start every other variant trains one
    epoch; then (b)'s clock runs from there to the epoch's validation (or its end).
    """

    def __init__(self, others: dict, timings: Timings):
        self.others, self.timings = others, timings
        self.started: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        for name, variant in self.others.items():
            self.timings.record(name, variant.epoch())
        self.started = clock()

    def on_validation_epoch_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._stop_clock(pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._stop_clock(pl_module)

    def _stop_clock(self, pl_module):
        if self.started is not None:
            _synchronize(pl_module.device)
            self.timings.record(IMGCLS, clock() - self.started)
            self.started = None


_ROUNDS: dict[str, Rounds] = {}


def rounds_callback(name: str) -> Rounds:
    """Hydra target: the config's ``callbacks.bench_rounds`` gets the benchmark's callback by name."""
    return _ROUNDS[name]


def run_imgcls_rounds(name: str, cfg, others: dict, timings: Timings) -> None:
    """(b) ``imgcls.training.run.train(cfg)``, its fit driving the rounds of ``others``."""
    from omegaconf import open_dict

    from imgcls.training.run import train

    _ROUNDS[name] = Rounds(others, timings)
    with open_dict(cfg):
        cfg.callbacks.bench_rounds = {"_target_": ROUNDS_TARGET, "name": name}
    train(cfg)
    if timings.rounds_done < timings.total_rounds:
        raise RuntimeError(
            f"the imgcls run stopped after {timings.rounds_done} of {timings.total_rounds} rounds"
        )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- the benchmark --------------------------------------------------------------------------
def compose(model: str, args, out_dir: Path, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    # The digits config's keys (batch size, augment, loaders) with the benchmark's data module.
    data = (
        "data=digits",
        f"data._target_={DATA_TARGET}",
        f"+data.train_size={args.train_size}",
        f"+data.val_size={args.val_size}",
        f"data.batch_size={args.batch_size}",
        f"data.augment.crop_padding={CIFAR_AUGMENT['crop_padding']}",
        f"data.augment.hflip={CIFAR_AUGMENT['hflip']}",
        "~data.val_fraction",
        "~data.test_fraction",
        "~data.split_seed",
    )
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(
            config_name="train",
            overrides=[
                f"model={model}",
                *data,
                f"trainer.max_epochs={args.warmup + args.rounds}",
                f"paths.output_dir={out_dir / 'runs' / model}",
                "print_config=false",
                "test=false",
                *overrides,
            ],
        )


class Timings:
    """images/s of each variant per round, the warm-up rounds left out; prints each round."""

    def __init__(self, names: list[str], warmup: int, rounds: int, images_per_epoch: int):
        self.names, self.warmup, self.total_rounds = names, warmup, warmup + rounds
        self.images_per_epoch = images_per_epoch
        self.speeds: dict[str, list[float]] = {name: [] for name in names}
        self.current: dict[str, float] = {}
        self.rounds_done = 0

    def record(self, name: str, seconds: float) -> None:
        self.current[name] = self.images_per_epoch / seconds
        if len(self.current) < len(self.names):
            return
        if self.rounds_done >= self.warmup:
            for variant, speed in self.current.items():
                self.speeds[variant].append(speed)
        self.rounds_done += 1
        row = "  ".join(f"{n}={self.current[n]:,.0f}/s" for n in self.names)
        print(f"  round {self.rounds_done}/{self.total_rounds}: {row}", flush=True)
        self.current = {}

    def results(self) -> dict:
        return {name: summary(values) for name, values in self.speeds.items()}


def interleave(variants: dict, warmup: int, rounds: int, images_per_epoch: int) -> dict:
    """Run one epoch of each variant per round; images/s of the rounds after the warm-up."""
    timings = Timings(list(variants), warmup, rounds, images_per_epoch)
    for _ in range(warmup + rounds):
        for name, variant in variants.items():
            timings.record(name, variant.epoch())
    return timings.results()


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def ratio(results: dict, top: str, bottom: str) -> dict:
    """The median of per-round ratios (both ran under the same load), with its min and max."""
    pairs = [t / b for t, b in zip(results[top]["runs"], results[bottom]["runs"], strict=True)]
    return {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs)}


def epoch_size(settings: Settings, args) -> int:
    """Images per epoch so that (a) trains for about ``--epoch-seconds`` (``--train-size`` at
    least): a fast model's short epochs would be swamped by the machine's hiccups."""
    images, labels = cifar_shaped(args.train_size, seed=1)
    loop = HandWritten(settings, images, labels, [0.5] * 3, [0.25] * 3)
    loop.epoch()  # warm-up
    speed = args.train_size / loop.epoch()
    wanted = int(speed * args.epoch_seconds) // settings.batch_size * settings.batch_size
    return max(args.train_size, wanted)


def bench_training(model: str, args, out_dir: Path, device: torch.device) -> dict:
    settings = Settings(compose(model, args, out_dir, args.override), device)
    args = argparse.Namespace(**{**vars(args), "train_size": epoch_size(settings, args)})
    cfg = compose(model, args, out_dir, args.override)
    print(f"\n== {model}: {settings.describe()}, batch {settings.batch_size}, {args.train_size} images/epoch")
    datamodule = CifarShapedDataModule(args.train_size, args.val_size)
    datamodule.setup("fit")
    train = datamodule.splits.train
    mean, std = datamodule.mean, datamodule.std
    others = {
        "c_students": Students(
            settings.as_students_wrote_it(), train.images, train.labels, mean, std, args.workers
        ),
        "a_handwritten": HandWritten(settings, train.images, train.labels, mean, std),
    }
    timings = Timings(["a_handwritten", IMGCLS, "c_students"], args.warmup, args.rounds, args.train_size)
    run_imgcls_rounds(model, cfg, others, timings)
    results = timings.results()
    return {
        "settings": settings.describe(),
        "images_per_s": results,
        "b/a": ratio(results, IMGCLS, "a_handwritten"),
        "b/c": ratio(results, IMGCLS, "c_students"),
    }


def bench_data(args, device: torch.device) -> dict:
    print(f"\n== data only (no model): batch {args.batch_size}, {args.train_size} images/epoch")
    datamodule = CifarShapedDataModule(
        args.train_size, args.val_size, batch_size=args.batch_size, augment=CIFAR_AUGMENT
    )
    datamodule.setup("fit")
    train = datamodule.splits.train
    settings = argparse.Namespace(batch_size=args.batch_size, device=device)
    variants = {
        IMGCLS: ImgclsData(datamodule, device),
        "c_students": Students(
            settings, train.images, train.labels, datamodule.mean, datamodule.std, args.workers, train=False
        ),
    }
    results = interleave(variants, args.warmup, args.rounds, args.train_size)
    return {"images_per_s": results, "b/c": ratio(results, IMGCLS, "c_students")}


def bench_options(model: str, args, out_dir: Path, device: torch.device) -> dict:
    """The speed options one by one, on the hand-written loop (a): their effect alone."""
    import copy

    base = Settings(compose(model, args, out_dir, [*args.override, "channels_last=false"]), device)
    options = {
        "fp32": {},
        "channels_last": {"channels_last": True},
        "bf16": {"precision": "bf16-mixed"},
        "channels_last+bf16": {"channels_last": True, "precision": "bf16-mixed"},
    }
    if args.compile:
        options["compile"] = {"compile": True}
    print(f"\n== {model} speed options on the hand-written loop, batch {base.batch_size}")
    datamodule = CifarShapedDataModule(args.train_size, args.val_size)
    datamodule.setup("fit")
    train = datamodule.splits.train
    variants = {}
    for name, changes in options.items():
        settings = copy.copy(base)
        vars(settings).update(changes)
        variants[name] = HandWritten(settings, train.images, train.labels, datamodule.mean, datamodule.std)
    warmup = args.warmup + (1 if args.compile else 0)  # the first compiled epoch compiles
    results = interleave(variants, warmup, args.rounds, args.train_size)
    return {"images_per_s": results, **{f"{name}/fp32": ratio(results, name, "fp32") for name in options}}


def print_table(report: dict) -> None:
    print(f"\n{'benchmark':<12} {'variant':<20} {'median img/s':>13} {'min':>9} {'max':>9}")
    for bench, result in report["benchmarks"].items():
        for variant, s in result["images_per_s"].items():
            print(f"{bench:<12} {variant:<20} {s['median']:>13,.0f} {s['min']:>9,.0f} {s['max']:>9,.0f}")
    print(f"\n{'benchmark':<12} {'ratio':<25} {'median':>7} {'min':>6} {'max':>6}")
    for bench, result in report["benchmarks"].items():
        for key, r in result.items():
            if "/" in key:
                print(f"{bench:<12} {key:<25} {r['median']:>7.2f} {r['min']:>6.2f} {r['max']:>6.2f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["cnn", "logreg"], help="conf/model options")
    parser.add_argument("--no-data", action="store_true", help="skip the data-only benchmark")
    parser.add_argument(
        "--options", nargs="*", default=["cnn"], help="models whose speed options to compare on (a)"
    )
    parser.add_argument("--compile", action="store_true", help="add torch.compile to the speed options")
    parser.add_argument("--train-size", type=int, default=5120, help="images per epoch, at least")
    parser.add_argument(
        "--epoch-seconds", type=float, default=0.6, help="training epochs this long for (a), at least"
    )
    parser.add_argument("--val-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=128, help="seed 002's batch size")
    parser.add_argument("--warmup", type=int, default=1, help="rounds not counted")
    parser.add_argument("--rounds", type=int, default=10, help="rounds counted (the machines here are noisy)")
    parser.add_argument(
        "--workers", type=int, default=0, help="(c)'s DataLoader workers: 0 is its fastest on 2 cores"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: time by this process's CPU time (use with --threads 1 on a busy machine)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench")
    parser.add_argument(
        "override", nargs="*", help="config overrides for every model, e.g. channels_last=true"
    )
    args = parser.parse_args(argv)

    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.clock == "cpu" and (device.type == "cuda" or args.workers):
        parser.error("--clock cpu counts only this process's CPU: use it on CPU with --workers 0")
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "environment": {k: os.environ.get(k) for k in _BENCH_ENV},
        "args": {k: str(v) for k, v in vars(args).items()},
        "benchmarks": {},
    }
    missing = [k for k in _BENCH_ENV if k not in os.environ]
    if missing:
        print(f"warning: {', '.join(missing)} not set: timings will be noisy (use `make bench`)")
    torch.manual_seed(0)
    if not args.no_data:
        report["benchmarks"]["data"] = bench_data(args, device)
    for model in args.models:
        report["benchmarks"][model] = bench_training(model, args, args.out, device)
    for model in args.options:
        report["benchmarks"][f"{model}-options"] = bench_options(model, args, args.out, device)
    print_table(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path}")
    return report


_BENCH_ENV = ("OMP_PROC_BIND", "OMP_PLACES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

if __name__ == "__main__":
    main()
