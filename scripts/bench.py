"""Training throughput of imgcls against a hand-written loop and the students' PIL pipeline.

    make bench                      # the Makefile sets the environment this needs (see below)
    python scripts/bench.py --models cnn --rounds 4 [config overrides, e.g. trainer.precision=bf16-mixed]

Three ways to train the same net on the same CIFAR-shaped data (``data=photo_crops``) in the
same precision:

    (a) handwritten  a minimal PyTorch loop over the data module's uint8 training tensor, its
                     batched augmentation, and the net ``build_classifier`` makes for (b), in
                     the memory format and compile setting the config resolves to
    (b) imgcls       ``imgcls.training.run.train`` on the composed ``conf/``, with its defaults:
                     loggers (TensorBoard + CSV), checkpointing, metrics, progress bar, fused steps
    (c) students     seed 002's pipeline as written: per-item PIL images, torchvision transforms
                     (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize)
                     in a DataLoader, the same net in torch's default memory format, uncompiled

So b/a is what the framework costs over the same work done by hand, and b/c what a user
gains over the notebook they come from. With no model, the input pipelines alone are
compared too (imgcls's batched uint8 path vs (c)'s).

The variants run interleaved in one process, one training epoch each per round, so a
neighbour's load hits them all alike (scripts/bench_harness.py); the report is the median
(and min/max) images/s over the rounds after the warm-up, and the median of the per-round
ratios b/a and b/c. Everything runs in the main thread: (b)'s fit drives the rounds, a
callback passed to ``train(cfg, extra_callbacks=...)`` running the other variants' epochs at
each of its epoch starts. Each time is the training part of an epoch (for (b),
``on_train_epoch_start`` to validation).

Timings on shared CPUs need ``OMP_PROC_BIND=close OMP_PLACES=cores`` and large
``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` set when the process starts
(``make bench`` does); without them expect 10x dips and +-15% noise. On a machine that
other jobs keep busy, ``--threads 1 --clock cpu`` times each variant by this process's CPU
time instead of the wall clock, which the neighbours disturb much less.

A last part compares the speed options (channels_last, bf16 autocast) on the hand-written
loop, from fp32 in the default memory format, so their effect shows without any framework
around them. ``--compile`` (opt-in: a cold compile takes 20-60 s per model on this CPU) adds
``compile=true`` to those options, and compares imgcls itself with ``compile=true`` to
imgcls eager (``<model>-compile``, ratio compile/eager): both are the run ``train`` composes
(``imgcls.training.run.compose``), their fits continued one epoch per round, interleaved.
Compiled variants get one more warm-up round than ``--warmup``, which absorbs the compile,
so their numbers are the speed after it.
"""

from __future__ import annotations

import argparse
import copy
import platform
import warnings
from contextlib import nullcontext
from functools import cached_property
from pathlib import Path

import torch
from bench_harness import (
    Timings,
    clock,
    environment,
    interleave,
    print_table,
    ratio,
    use_clock,
    write_report,
)
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf
from torch import nn

from imgcls.config import register_resolvers
from imgcls.data.datamodule import ImageDataModule
from imgcls.training.optimization import build_optimizer
from imgcls.training.precision import resolve_precision
from imgcls.training.run import build_classifier, build_datamodule

REPO = Path(__file__).resolve().parents[1]
IMGCLS = "b_imgcls"


# --- (c)'s input pipeline -------------------------------------------------------------------
class PilImages(torch.utils.data.Dataset):
    """torchvision's CIFAR10 dataset, minus the download: HWC uint8 arrays, one PIL image per item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()
        if self.images.shape[-1] == 1:  # grayscale (MNIST): PIL takes HxW, not HxWx1
            self.images = self.images[..., 0]
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def students_loader(
    images, labels, mean, std, batch_size: int, workers: int, crop_flip: bool = True, shuffle: bool = True
):
    """``crop_flip=False``: a recipe without augmentation (MNIST), only ToTensor and Normalize.
    ``shuffle=False``: an evaluation loader (seed 002's validation and test loaders)."""
    from torchvision import transforms

    augment = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if crop_flip else []
    transform = transforms.Compose([*augment, transforms.ToTensor(), transforms.Normalize(mean, std)])
    return torch.utils.data.DataLoader(
        PilImages(images, labels, transform),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


# --- settings shared by every variant -----------------------------------------------------
class Settings:
    """What (a) and (c) take from a composed config and its data module: the net as
    ``build_classifier`` makes it for (b) (memory format and compile resolved by imgcls), the
    optimizer, the batch size and the precision."""

    def __init__(self, cfg, datamodule: ImageDataModule, device: torch.device):
        self.cfg, self.datamodule, self.device = cfg, datamodule, device
        self.batch_size = datamodule.batch_size
        self.precision = resolve_precision(cfg)
        self.compile = bool(cfg.get("compile", False))

    @cached_property
    def channels_last(self) -> bool:
        return build_classifier(self.cfg, self.datamodule).channels_last  # "auto" resolved

    def changed(self, values: dict) -> Settings:
        """These settings with config values changed, e.g. ``{"trainer.precision": "bf16-mixed"}``."""
        cfg = copy.deepcopy(self.cfg)
        for key, value in values.items():
            OmegaConf.update(cfg, key, value)
        return Settings(cfg, self.datamodule, self.device)

    def as_students_wrote_it(self) -> Settings:
        """The same model, optimizer and precision in seed 002's default memory format, uncompiled."""
        return self.changed({"channels_last": False, "compile": False})

    def autocast(self):
        dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype) if dtype else nullcontext()

    def model(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A fresh net (imgcls's, converted and compiled as configured) and its optimizer."""
        net = build_classifier(self.cfg, self.datamodule).net.to(self.device)
        optimizer = build_optimizer(
            OmegaConf.to_container(self.cfg.optimizer, resolve=True), net.parameters()
        )
        return net, optimizer

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


def _normalization(datamodule: ImageDataModule, device: torch.device):
    mean = torch.tensor(datamodule.mean, device=device).view(1, -1, 1, 1)
    return mean, torch.tensor(datamodule.std, device=device).view(1, -1, 1, 1)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- variants: each runs one training epoch per call and returns its seconds ---------------
class HandWritten:
    """(a) The reference: the loop a careful user writes by hand around uint8 tensors."""

    def __init__(self, settings: Settings, train: bool = True):
        self.settings, self.train = settings, train
        device, datamodule = settings.device, settings.datamodule
        split = datamodule.splits.train
        self.images, self.labels = split.images.to(device), split.labels.to(device)
        self.mean, self.std = _normalization(datamodule, device)
        self.augment = datamodule.augment  # uint8 in, [0, 1] floats out
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

    def __init__(self, settings: Settings, workers: int, train: bool = True, crop_flip: bool = True):
        self.settings, self.train = settings, train
        datamodule = settings.datamodule
        split = datamodule.splits.train
        self.loader = students_loader(
            split.images, split.labels, datamodule.mean, datamodule.std, settings.batch_size, workers, crop_flip
        )
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
        self.mean, self.std = _normalization(datamodule, device)

    def epoch(self) -> float:
        start = clock()
        for images, _labels in self.loader:
            images = self.datamodule.augment(images.to(self.device))
            images = (images - self.mean) / self.std
        _synchronize(self.device)
        return clock() - start


class EpochClock(Callback):
    """Times each training epoch of a fit, from ``on_train_epoch_start`` to its validation
    (or its end), and hands the seconds to ``record``."""

    def __init__(self, record):
        self.record = record
        self.started: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        self.started = clock()

    def on_validation_epoch_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._stop(pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._stop(pl_module)

    def _stop(self, pl_module):
        if self.started is not None:
            _synchronize(pl_module.device)
            self.record(clock() - self.started)
            self.started = None


class Rounds(EpochClock):
    """Runs the benchmark's rounds from inside imgcls's fit, in the main thread: a fit run in a
    second thread measured 5-7% slower here for logistic regression (its own OpenMP team and
    malloc arena), which would bias b/a.

    Each training epoch of the fit is one round. At its start every other variant trains one
    epoch; then (b)'s clock runs from there to the epoch's validation (or its end).
    """

    def __init__(self, others: dict, timings: Timings):
        super().__init__(lambda seconds: timings.record(IMGCLS, seconds))
        self.others, self.timings = others, timings

    def on_train_epoch_start(self, trainer, pl_module):
        for name, variant in self.others.items():
            self.timings.record(name, variant.epoch())
        super().on_train_epoch_start(trainer, pl_module)


class ImgclsEpochs:
    """(b) one epoch per call, for comparing two configs of it: the data module, classifier
    and trainer ``train`` runs (``imgcls.training.run.compose``), their fit continued by one
    epoch each call (each call's fit also sets up, sanity-checks and checkpoints, untimed)."""

    def __init__(self, cfg):
        from imgcls.training.run import compose as compose_run

        self.seconds: list[float] = []
        self.datamodule, self.model, self.trainer, *_ = compose_run(cfg, [EpochClock(self.seconds.append)])

    def epoch(self) -> float:
        self.trainer.fit_loop.max_epochs = self.trainer.current_epoch + 1
        with warnings.catch_warnings():  # the previous call's checkpoints, as in any continued fit
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            self.trainer.fit(self.model, datamodule=self.datamodule)
        return self.seconds.pop()


# --- the benchmark --------------------------------------------------------------------------
def compose(model: str | None, args, out_dir: Path, overrides: list[str], run: str | None = None):
    """``conf/train.yaml`` with ``data=photo_crops`` at the benchmark's sizes, ``model`` (if
    given), one fit epoch per round, no test pass, then ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(
            config_name="train",
            overrides=[
                *([f"model={model}"] if model else []),
                "data=photo_crops",
                f"data.train_size={args.train_size}",
                f"data.val_size={args.val_size}",
                f"data.batch_size={args.batch_size}",
                f"trainer.max_epochs={args.warmup + args.rounds}",
                f"paths.output_dir={out_dir / 'runs' / (run or model or 'data')}",
                "print_config=false",
                "test=false",
                *overrides,
            ],
        )


def sized(model: str, args, out_dir: Path, device: torch.device) -> argparse.Namespace:
    """``args`` with ``train_size`` the images per epoch that (a) trains in about
    ``--epoch-seconds`` (``--train-size`` at least): a fast model's short epochs would be
    swamped by the machine's hiccups."""
    cfg = compose(model, args, out_dir, args.override)
    settings = Settings(cfg, build_datamodule(cfg), device)
    loop = HandWritten(settings)
    loop.epoch()  # warm-up
    speed = args.train_size / loop.epoch()
    wanted = int(speed * args.epoch_seconds) // settings.batch_size * settings.batch_size
    return argparse.Namespace(**{**vars(args), "train_size": max(args.train_size, wanted)})


def bench_training(model: str, args, out_dir: Path, device: torch.device) -> dict:
    """(a), (b) and (c) on ``model``; (b) is ``train(cfg)``, its fit driving the rounds."""
    from imgcls.training.run import train

    args = sized(model, args, out_dir, device)
    cfg = compose(model, args, out_dir, args.override)
    settings = Settings(cfg, build_datamodule(cfg), device)
    print(f"\n== {model}: {settings.describe()}, batch {settings.batch_size}, {args.train_size} images/epoch")
    others = {
        "c_students": Students(settings.as_students_wrote_it(), args.workers),
        "a_handwritten": HandWritten(settings),
    }
    timings = Timings(["a_handwritten", IMGCLS, "c_students"], args.warmup, args.rounds, args.train_size)
    train(cfg, extra_callbacks=[Rounds(others, timings)])
    timings.check_complete()
    results = timings.results()
    return {
        "settings": settings.describe(),
        "images_per_s": results,
        "b/a": ratio(results, IMGCLS, "a_handwritten"),
        "b/c": ratio(results, IMGCLS, "c_students"),
    }


def bench_data(args, out_dir: Path, device: torch.device) -> dict:
    print(f"\n== data only (no model): batch {args.batch_size}, {args.train_size} images/epoch")
    cfg = compose(None, args, out_dir, args.override)
    settings = Settings(cfg, build_datamodule(cfg), device)
    variants = {
        IMGCLS: ImgclsData(settings.datamodule, device),
        "c_students": Students(settings, args.workers, train=False),
    }
    results = interleave(variants, args.warmup, args.rounds, args.train_size).results()
    return {"images_per_s": results, "b/c": ratio(results, IMGCLS, "c_students")}


def bench_options(model: str, args, out_dir: Path, device: torch.device) -> dict:
    """The speed options one by one, on the hand-written loop (a): their effect alone."""
    cfg = compose(model, args, out_dir, args.override)
    base = Settings(cfg, build_datamodule(cfg), device).changed(
        {"channels_last": False, "compile": False, "trainer.precision": "32-true"}
    )
    options = {
        "fp32": {},
        "channels_last": {"channels_last": True},
        "bf16": {"trainer.precision": "bf16-mixed"},
        "channels_last+bf16": {"channels_last": True, "trainer.precision": "bf16-mixed"},
    }
    if args.compile:
        options["compile"] = {"compile": True}
    print(f"\n== {model} speed options on the hand-written loop, batch {base.batch_size}")
    variants = {name: HandWritten(base.changed(changes)) for name, changes in options.items()}
    warmup = args.warmup + (1 if args.compile else 0)  # as in bench_compile
    results = interleave(variants, warmup, args.rounds, args.train_size).results()
    ratios = {f"{name}/fp32": ratio(results, name, "fp32") for name in options if name != "fp32"}
    return {"images_per_s": results, **ratios}


def bench_compile(model: str, args, out_dir: Path, device: torch.device) -> dict:
    """(b) with ``compile=true`` against (b) eager, one epoch of each fit per round."""
    args = sized(model, args, out_dir, device)
    print(f"\n== {model}: imgcls compiled vs eager, batch {args.batch_size}, {args.train_size} images/epoch")
    # Each call's fit would print the model summary again (at its start, untimed).
    quiet = "trainer.enable_model_summary=false"
    variants = {
        f"b_{mode}": ImgclsEpochs(
            compose(
                model,
                args,
                out_dir,
                [quiet, *args.override, f"compile={mode == 'compile'}"],
                f"{model}-{mode}",
            )
        )
        for mode in ("eager", "compile")
    }
    warmup = args.warmup + 1  # the first compiled epoch compiles; the second was still slow here
    results = interleave(variants, warmup, args.rounds, args.train_size).results()
    return {"images_per_s": results, "compile/eager": ratio(results, "b_compile", "b_eager")}


# --augment: each recipe of data.augment alone (BatchAugment's settings), then MixUp/CutMix.
AUGMENT_VARIANTS = {
    "none (to float)": {},
    "crop_flip": {"crop_padding": 4, "hflip": True},
    "randaugment": {"randaugment": {"num_ops": 2, "magnitude": 9}},
    "trivialaugment": {"trivialaugment": True},
    "resized_crop": {"random_resized_crop": {}},
    "color_jitter": {"color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4}},
    "random_erasing": {"random_erasing": 0.25},
}


class AugmentOnly:
    """One epoch of augmentation alone over a CIFAR-shaped uint8 tensor on the device:
    ``augment`` per batch (and ``mixing`` after it), or a torchvision transform ``per_image``."""

    def __init__(self, images, labels, batch_size: int, augment=None, mixing=None, per_image=None):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.augment, self.mixing, self.per_image = augment, mixing, per_image

    def epoch(self) -> float:
        start = clock()
        for images, labels in zip(self.images.split(self.batch_size), self.labels.split(self.batch_size), strict=True):
            if self.per_image is not None:
                images = torch.stack([self.per_image(image) for image in images])
            else:
                images = self.augment(images)
            if self.mixing is not None:
                self.mixing(images, labels)
        _synchronize(self.images.device)
        return clock() - start


def bench_augment(args, device: torch.device) -> dict:
    """images/s of each augmentation recipe alone (data/augment.py, data/mixing.py) against
    no augmentation, and torchvision's v2 RandAugment per image (the per-sample alternative)."""
    from torchvision.transforms import v2

    from imgcls.data.augment import BatchAugment
    from imgcls.data.mixing import BatchMixing

    print(f"\n== augmentation only: CIFAR-shaped uint8 batches of {args.batch_size}, {args.train_size} images/epoch")
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.train_size, 3, 32, 32), dtype=torch.uint8, generator=generator).to(device)
    labels = torch.randint(0, 10, (args.train_size,), generator=generator).to(device)
    variants = {
        name: AugmentOnly(images, labels, args.batch_size, BatchAugment(**settings))
        for name, settings in AUGMENT_VARIANTS.items()
    }
    mixing = BatchMixing(10, mixup_alpha=0.8, cutmix_alpha=1.0)
    variants["mixup_cutmix"] = AugmentOnly(images, labels, args.batch_size, BatchAugment(), mixing)
    randaugment = v2.RandAugment()
    variants["tv_randaug_per_image"] = AugmentOnly(images, labels, args.batch_size, per_image=randaugment)
    results = interleave(variants, args.warmup, args.rounds, args.train_size).results()
    # How much faster per-sample RandAugment runs batched than torchvision's, image by image.
    return {"images_per_s": results, "randaugment/tv_randaug_per_image": ratio(results, "randaugment", "tv_randaug_per_image")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["cnn", "logreg"], help="conf/model options")
    parser.add_argument("--no-data", action="store_true", help="skip the data-only benchmark")
    parser.add_argument(
        "--augment", action="store_true", help="only the augmentation recipes alone (data.augment), images/s"
    )
    parser.add_argument(
        "--options", nargs="*", default=["cnn"], help="models whose speed options to compare on (a)"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="for the --options models, also compile=true on (a), and (b) compiled vs (b) eager "
        "(a cold compile takes 20-60 s per model on CPU)",
    )
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

    use_clock(args.clock)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.clock == "cpu" and (device.type == "cuda" or args.workers):
        parser.error("--clock cpu counts only this process's CPU: use it on CPU with --workers 0")
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "clock": args.clock,
        "environment": environment(warn="timings will be noisy (use `make bench`)"),
        "args": {k: str(v) for k, v in vars(args).items()},
        "benchmarks": {},
    }
    torch.manual_seed(0)
    benchmarks = report["benchmarks"]
    if args.augment:
        benchmarks["augment"] = bench_augment(args, device)
        print_table(benchmarks)
        write_report(report, args.out, "bench_augment")
        return report
    if not args.no_data:
        benchmarks["data"] = bench_data(args, args.out, device)
    for model in args.models:
        benchmarks[model] = bench_training(model, args, args.out, device)
    for model in args.options:
        benchmarks[f"{model}-options"] = bench_options(model, args, args.out, device)
        if args.compile:
            benchmarks[f"{model}-compile"] = bench_compile(model, args, args.out, device)
    print_table(benchmarks)
    write_report(report, args.out, "bench")
    return report


if __name__ == "__main__":
    main()
