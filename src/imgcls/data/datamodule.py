"""The base data module: splits of uint8 images in memory, batched, augmented on the device."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, WeightedRandomSampler

from imgcls.data.arrays import ImageArrays, WithIndex, keep_batch
from imgcls.data.augment import BatchAugment, StepBatches, to_unit_float
from imgcls.data.evaluation_order import EvaluationOrder
from imgcls.data.mixing import MIXING_KEYS, BatchMixing
from imgcls.data.resident import ResidentBatches, resident_device
from imgcls.data.training_order import TrainingOrder

# Mean/std are estimated from at most this many training images: enough for 3 decimals.
_STATS_SAMPLE = 10_000


@dataclass
class DatasetSplits:
    """What a dataset loader produces; everything else is derived from it."""

    train: ImageArrays
    val: ImageArrays
    test: ImageArrays
    class_names: list[str]
    extra_tests: dict[str, ImageArrays] = field(default_factory=dict)


class ImageDataModule(L.LightningDataModule):
    """Subclasses implement :meth:`load_splits`; this class does the rest.

    After :meth:`setup`, ``num_classes``, ``class_names``, ``input_shape``, ``mean``, ``std``
    and ``class_counts`` describe the data for the model. Batches leave the loaders as uint8
    and are augmented (training only) and scaled to [0, 1] after the transfer to the device.
    """

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        augment: Mapping | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        sampler: str = "random",
        ordinal: bool = False,
        resident: str | bool = "auto",
        resident_memory_share: float = 0.5,
    ):
        super().__init__()
        if sampler not in ("random", "weighted"):
            raise ValueError(f"data.sampler must be 'random' or 'weighted', got {sampler!r}")
        # weighted: each epoch draws len(train) samples with replacement, every class equally
        # likely. Under DDP, Lightning shards the draw across ranks (DistributedSamplerWrapper).
        self.sampler = sampler
        # Ordered classes (e.g. disease grades): the model also reports quadratic weighted kappa.
        self.ordinal = bool(ordinal)
        self.batch_size = int(batch_size)
        # Training batches handed over at once (training/fused_steps.py); the model splits them.
        self.fused_steps = 1
        # Training batches carry each sample's position too (the model's feature cache keys on it).
        self.train_positions = False
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        # The training split on the training device, batched there (data/resident.py).
        self.resident, self.resident_memory_share = resident, float(resident_memory_share)
        self._resident_train: ImageArrays | None = None
        augment = dict(augment or {})
        # MixUp/CutMix need the class count, known after setup (see `mixing`).
        self._mixing_settings = {key: augment.pop(key) for key in MIXING_KEYS if key in augment}
        self.augment = BatchAugment(**augment)
        # Plain floats: a config's ListConfig would end up in the model's checkpoint hparams,
        # which torch.load(weights_only=True) refuses to read back.
        self._fixed_mean = [float(value) for value in mean] if mean is not None else None
        self._fixed_std = [float(value) for value in std] if std is not None else None
        self.splits: DatasetSplits | None = None
        # The split ``trainer.predict`` evaluates: "test", "val", "train" or an extra test set.
        self.predict_split = "test"
        # Samples found in two splits and accepted (data.allow_overlap): the report lists them.
        self.overlaps: list[str] = []

    # --- what subclasses provide -------------------------------------------------------
    def load_splits(self) -> DatasetSplits:
        raise NotImplementedError

    # --- Lightning hooks ---------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self.load_splits()
            self._check_labels()

    def train_dataloader(self) -> DataLoader | ResidentBatches:
        batch_size = self.batch_size * self.fused_steps
        train = WithIndex(self._splits.train) if self.train_positions else self._splits.train
        if self.sampler == "weighted":
            return self._loader(train, batch_size, sampler=self._balanced_sampler())
        resident = self.resident_train()
        if resident is not None:
            sampler = self._sampler(resident, shuffle=True, seed=_loader_seed())
            loader = ResidentBatches(resident, sampler, self.batch_size, self.fused_steps, self.train_positions)
        else:
            loader = self._loader(train, batch_size, shuffle=True)
        # A resumed run's first iterator (and its workers' prefetch) is made before Lightning
        # sets the epoch on the sampler: set it here to the epoch the fit loop runs next (or is
        # in the middle of), so a resumed epoch replays its own order.
        loader.sampler.set_epoch(self.trainer.fit_loop.epoch_progress.total.processed if self.trainer else 0)
        return loader

    def resident_train(self) -> ImageArrays | None:
        """The training split on the training device when it trains from there
        (``data.resident``), else None: the DataLoader path."""
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        if not self.trains_resident(device):
            return None
        if self._resident_train is None or self._resident_train.images.device != device:
            train = self._splits.train
            self._resident_train = ImageArrays(train.images.to(device), train.labels.to(device))
        return self._resident_train

    def trains_resident(self, device: torch.device) -> bool:
        """Whether the training split trains from ``device``'s memory (data/resident.py)."""
        train = self._splits.train
        chosen = resident_device(
            self.resident, self.resident_memory_share, train, device, self.num_workers, self.sampler
        )
        return chosen is not None

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self._splits.val)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._evaluation_loader(split) for split in self.test_sets.values()]

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self.split(self.predict_split))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, *rest = batch  # labels, and each sample's position for evaluation batches
        if self.trainer is None or not self.trainer.training:
            return to_unit_float(images), *rest
        labels = rest[0]
        if self.train_positions:  # for the model's feature cache, which turns augmentation off
            return self.augment(images), labels, rest[1]
        if self.fused_steps > 1:  # a group: each step's batch is augmented (and mixed) as it is taken
            return StepBatches(images, labels, self.augment, self.batch_size, self.mixing), labels
        images = self.augment(images)
        if self.mixing is None:
            return images, labels
        # The loss takes the soft targets; the training metrics, the original labels.
        mixed, targets = self.mixing(images, labels)
        return mixed, labels, targets

    @property
    def mixing(self) -> BatchMixing | None:
        """MixUp/CutMix of the training batches (data.augment.mixup_alpha, cutmix_alpha), or None."""
        if not hasattr(self, "_mixing"):
            mixing = BatchMixing(self.num_classes, **self._mixing_settings)
            self._mixing = mixing if mixing.enabled else None
        return self._mixing

    @property
    def augments(self) -> bool:
        """Whether training batches are augmented or mixed (``data.augment``)."""
        return not self.augment.is_identity or self.mixing is not None

    def stop_augmenting(self) -> str:
        """Train on the images as they are (the feature cache: the backbone sees each image
        once); returns what was on, for the user's note."""
        was = self.augment.extra_repr() + (", mixup/cutmix" if self.mixing is not None else "")
        self.augment, self._mixing = BatchAugment(), None
        return was

    # --- what the model needs to know --------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(self._splits.class_names)

    @property
    def num_classes(self) -> int:
        return len(self._splits.class_names)

    @property
    def input_shape(self) -> list[int]:
        return list(self._splits.train.images.shape[1:])

    @property
    def test_sets(self) -> dict[str, ImageArrays]:
        """The main test split first, named ``test``, then any extra test sets."""
        return {"test": self._splits.test, **self._splits.extra_tests}

    def split(self, name: str) -> ImageArrays:
        """A split by name: "train", "val", or a test set's name."""
        splits = {"train": self._splits.train, "val": self._splits.val, **self.test_sets}
        if name not in splits:
            raise KeyError(f"no split {name!r}; the splits are {', '.join(splits)}")
        return splits[name]

    def sample_paths(self, split: str) -> list[str] | None:
        """Each sample's file of ``split`` ("train", "val" or a test set's name), by position;
        None for datasets held as arrays, whose samples are named by their position."""
        return None

    def fingerprint(self) -> dict[str, object]:
        """What identifies the data (run_manifest.py): each split's size and a SHA-256 of its
        images and labels, and the class names."""
        splits = {}
        for name in ("train", "val", *self.test_sets):
            data = self.split(name)
            digest = hashlib.sha256(self._split_content_key(name))
            digest.update(data.labels.numpy().tobytes())
            splits[name] = {"samples": len(data), "sha256": digest.hexdigest()}
        return {"type": type(self).__name__, "classes": self.class_names, "splits": splits}

    def _split_content_key(self, name: str) -> bytes:
        """The bytes that stand for a split's images in its fingerprint: the images themselves."""
        return self.split(name).images.numpy().tobytes()

    @property
    def class_counts(self) -> list[int]:
        return torch.bincount(self._splits.train.labels, minlength=self.num_classes).tolist()

    @property
    def mean(self) -> list[float]:
        return self._fixed_mean or self._stats()[0]

    @property
    def std(self) -> list[float]:
        return self._fixed_std or self._stats()[1]

    # --- internals ---------------------------------------------------------------------
    @property
    def _splits(self) -> DatasetSplits:
        if self.splits is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its data is used")
        return self.splits

    def _loader(self, data: ImageArrays, batch_size: int, shuffle: bool = False, sampler=None) -> DataLoader:
        # The loader's own generator seeds its workers, leaving the global generators to
        # augmentation and dropout.
        seed = _loader_seed()
        return DataLoader(
            data,
            batch_size=batch_size,
            sampler=sampler or self._sampler(data, shuffle, seed),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=keep_batch,
            generator=torch.Generator().manual_seed(seed),
        )

    def _evaluation_loader(self, data: ImageArrays) -> DataLoader:
        """Batches of (images, labels, positions) in a fixed shuffled order (see
        data/evaluation_order.py), each sample once across processes."""
        replicas, rank = self._replicas()
        return self._loader(
            WithIndex(data), self.eval_batch_size, sampler=EvaluationOrder(len(data), replicas, rank)
        )

    def _replicas(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer else (1, 0)

    def _sampler(self, data: ImageArrays, shuffle: bool, seed: int):
        """Each process's share of the training data, shuffled per epoch; a run resumed in the
        middle of an epoch continues it where it stopped (data/training_order.py)."""
        replicas, rank = self._replicas()
        if not shuffle:
            return DistributedSampler(data, num_replicas=replicas, rank=rank, shuffle=False, seed=seed)
        order = TrainingOrder(data, replicas, rank, seed)
        progress = self.trainer.fit_loop.epoch_loop.batch_progress if self.trainer is not None else None
        if progress is not None and not progress.is_last_batch:  # a checkpoint taken mid-epoch
            order.resume_after(progress.current.completed * self.batch_size * self.fused_steps)
        return order

    def _balanced_sampler(self) -> WeightedRandomSampler:
        labels = self._splits.train.labels
        counts = torch.tensor(self.class_counts, dtype=torch.float64)
        return WeightedRandomSampler((1.0 / counts)[labels], num_samples=len(labels), replacement=True)

    def _stats(self) -> tuple[list[float], list[float]]:
        if not hasattr(self, "_cached_stats"):
            images = self._splits.train.images
            pick = torch.arange(len(images))
            if len(images) > _STATS_SAMPLE:
                pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:_STATS_SAMPLE]
            images = images[pick.sort().values]  # a tensor, also when a split decodes on demand
            pixels = images.transpose(0, 1).reshape(images.shape[1], -1).double() / 255.0
            mean, std = pixels.mean(1), pixels.std(1).clamp_min(1e-6)
            self._cached_stats = (mean.tolist(), std.tolist())
        return self._cached_stats

    def _check_labels(self) -> None:
        for name, split in {"train": self._splits.train, "val": self._splits.val, **self.test_sets}.items():
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= self.num_classes):
                raise ValueError(
                    f"{type(self).__name__}: {name} labels must be in [0, {self.num_classes - 1}], "
                    f"found {split.labels.min().item()}..{split.labels.max().item()}"
                )


def _loader_seed() -> int:
    """The seed set by seed_everything: the data order is a function of (seed, epoch), which
    Lightning sets on the sampler, so a resumed run replays it."""
    return torch.initial_seed() % 2**63
