"""Datasets too big for one machine: each split written once as LitData shards (chunks of
uint8 images and labels), the training split streamed from a local folder or object store.

Write (any configured dataset, composed as ``python train.py`` would compose it)::

    python -m imgcls.data.shards write output_dir=<dir> data=folder data.root=<images> [data.*=...]

Train: ``python train.py data=stream data.input_dir=<dir or s3://bucket/prefix>``.

``<dir>`` holds one LitData dataset per split (``train/``, ``val/``, ``test/``, extra test sets)
and ``description/``: the class names, input shape, mean/std, class counts and fingerprint,
as JSON in a one-sample LitData dataset, so that it is read from wherever LitData reads the
shards (``dataset.json`` beside it is the same JSON, for people, when the output is local).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import sys
from pathlib import Path

import torch

from imgcls.data.arrays import ImageArrays
from imgcls.data.datamodule import DatasetSplits, ImageDataModule, _loader_seed

FORMAT = 1
DESCRIPTION = "description"
# What each sample holds, in LitData's serializer names: nothing that unpickles.
SAMPLE_FORMAT = ["tensor", "int"]


# --- writing ---------------------------------------------------------------------------
def _sample(position: int, data) -> dict:
    image, label = data[position]
    return {"image": torch.as_tensor(image).contiguous(), "label": int(label)}


def _description_sample(_: int, text: str) -> str:
    return text


def write_shards(
    datamodule: ImageDataModule, output_dir: str, chunk_bytes: str = "64MB", workers: int = 1
) -> dict:
    """Write every split of ``datamodule`` (set up here) under ``output_dir``; returns the
    description. Samples keep their split's order (``keep_data_ordered``)."""
    from litdata import optimize

    datamodule.prepare_data()
    datamodule.setup("fit")
    splits = {"train": datamodule.split("train"), "val": datamodule.split("val"), **datamodule.test_sets}
    if not len(splits["train"]):
        raise ValueError(f"{type(datamodule).__name__}: the training split is empty, nothing to stream")
    description = {
        "format": FORMAT,
        "source": type(datamodule).__name__,
        "class_names": datamodule.class_names,
        "input_shape": datamodule.input_shape,
        "mean": datamodule.mean,
        "std": datamodule.std,
        "class_counts": datamodule.class_counts,
        "ordinal": bool(getattr(datamodule, "ordinal", False)),
        "samples": {name: len(data) for name, data in splits.items()},
        "fingerprint": datamodule.fingerprint(),
    }
    text = json.dumps(description, indent=1, ensure_ascii=False)
    output = output_dir.rstrip("/")
    # fork: the workers inherit the loaded splits; spawned ones re-import torch and unpickle
    # them (about 16 s a split here, on Linux). Nothing on an accelerator is set up by now.
    start = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    common = dict(
        mode="overwrite", reorder_files=False, keep_data_ordered=True, verbose=False, start_method=start
    )
    for name, data in splits.items():
        if len(data):  # an empty split (no test set) is described by its count alone
            optimize(
                fn=functools.partial(_sample, data=data), inputs=list(range(len(data))),
                output_dir=f"{output}/{name}", chunk_bytes=chunk_bytes, num_workers=workers, **common,
            )  # fmt: skip
    optimize(
        fn=functools.partial(_description_sample, text=text), inputs=[0],
        output_dir=f"{output}/{DESCRIPTION}", chunk_bytes="1MB", num_workers=1, **common,
    )  # fmt: skip
    if "://" not in output:
        from imgcls.temp_files import temporary_path

        target = Path(output) / "dataset.json"
        temporary = temporary_path(target)
        temporary.write_text(text + "\n", encoding="utf-8")
        temporary.replace(target)
    return description


def main(argv: list[str] | None = None) -> None:
    """``python -m imgcls.data.shards write output_dir=<dir> [chunk_bytes=64MB] [workers=N]
    data=<name> [data.key=value ...]``: the other arguments are Hydra overrides of conf/train.yaml."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from imgcls.commands import CONF_DIR
    from imgcls.config import register_resolvers

    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m imgcls.data.shards write output_dir=<dir> [chunk_bytes=64MB] [workers=1] data=<name> [data.key=value ...]"
    if not argv or argv[0] != "write":
        raise SystemExit(usage)
    own = {"output_dir": None, "chunk_bytes": "64MB", "workers": "1"}
    overrides = []
    for argument in argv[1:]:
        key, _, value = argument.partition("=")
        if key in own:
            own[key] = value
        else:
            overrides.append(argument)
    if not own["output_dir"]:
        raise SystemExit(f"output_dir= is required\n{usage}")
    output_dir = own["output_dir"]
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        # Reports of the data module (bad_files.csv) go beside the shards.
        report_dir = output_dir if "://" not in output_dir else "."
        cfg = compose(config_name="train", overrides=[*overrides, f"paths.output_dir={report_dir}"])
    if cfg.data.get("_target_", "").endswith("ShardDataModule"):
        raise SystemExit("data=stream reads shards; choose the dataset to write them from, e.g. data=folder")
    datamodule = instantiate(cfg.data)
    description = write_shards(datamodule, output_dir, own["chunk_bytes"], int(own["workers"]))
    counts = ", ".join(f"{name} {count}" for name, count in description["samples"].items())
    print(f"Wrote {output_dir}: {counts} samples, {len(description['class_names'])} classes")


# --- reading ---------------------------------------------------------------------------
class _NoPickle:
    """Stands in for LitData's pickle serializer: shards handed to users never run code."""

    def serialize(self, item):
        raise TypeError("imgcls shards hold tensors and integers only")

    def deserialize(self, data: bytes):
        raise ValueError(
            "these shards hold pickled samples, which imgcls does not load (they could run code)"
        )

    def can_serialize(self, item) -> bool:
        return False

    def setup(self, *args, **kwargs) -> None:  # LitData calls it on some serializers
        return None


def streaming_dataset(input_dir: str, cache_dir: str | None = None, **options):
    from litdata import StreamingDataset

    return StreamingDataset(input_dir, cache_dir=cache_dir, serializers={"pickle": _NoPickle()}, **options)


def image_batch(samples) -> tuple[torch.Tensor, torch.Tensor]:
    """collate_fn: a list of shard samples as one uint8 image batch and its labels."""
    images = torch.stack([sample["image"] for sample in samples])
    labels = torch.tensor([sample["label"] for sample in samples], dtype=torch.long)
    return images, labels


class ShardedSplit(torch.utils.data.Dataset):
    """A split read sample by sample from its shards (random access, global positions), for
    passes over the training split that are not training (predictions, suspect labels)."""

    def __init__(self, dataset, samples: int, input_shape: list[int]):
        self.dataset, self.samples = dataset, int(samples)
        self.images = _ShardImages(self, torch.Size((self.samples, *input_shape)))

    def __len__(self) -> int:
        return self.samples

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return image_batch([self.dataset[int(index)] for index in indices])


class _ShardImages:
    """``split.images[index]`` reads the indexed images (the report's example images)."""

    def __init__(self, split: ShardedSplit, shape: torch.Size):
        self._split, self.shape = split, shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        index = torch.as_tensor(index)
        if index.ndim == 0:
            return self._split.dataset[int(index)]["image"]
        return self._split.__getitems__(index.tolist())[0]


class ShardDataModule(ImageDataModule):
    """``data=stream``: training batches streamed from the shards in ``input_dir`` by LitData's
    :class:`~litdata.StreamingDataLoader` (shuffled per epoch from ``seed``; under DDP and on
    several nodes LitData gives each process its own chunks). The validation and test splits
    are read into memory at setup: they are small next to the training split, and held there
    each sample is evaluated once across processes (data/evaluation_order.py) as for every
    other dataset. The loader's position is saved in checkpoints (Lightning saves a stateful
    train loader's ``state_dict``), so a resume continues mid-epoch where it stopped."""

    def __init__(
        self,
        input_dir: str,
        cache_dir: str | None = None,
        max_cache_size: str = "100GB",
        ordinal=None,
        **kwargs,
    ):
        sampler = kwargs.get("sampler", "random")
        if sampler != "random":
            raise ValueError(
                f"data=stream: data.sampler={sampler!r} is not supported, the stream draws in chunk order"
            )
        if kwargs.get("resident") not in (None, "auto", False):
            raise ValueError(
                "data=stream: data.resident must be auto or false; a stream is not held in memory"
            )
        super().__init__(**{**kwargs, "resident": False})
        self.input_dir = str(input_dir).rstrip("/")
        self.cache_dir, self.max_cache_size = cache_dir, max_cache_size
        self.description: dict | None = None
        # null: as the written dataset was (its data.ordinal).
        self._ordinal_setting = ordinal

    def load_splits(self) -> DatasetSplits:
        description = self._described
        if self._ordinal_setting is None:
            self.ordinal = bool(description.get("ordinal", False))
        else:
            self.ordinal = bool(self._ordinal_setting)
        shape = description["input_shape"]
        samples = description["samples"]
        evaluated = {name: self._in_memory(name, samples[name], shape) for name in samples if name != "train"}
        train = ShardedSplit(self._dataset("train"), samples["train"], shape)
        return DatasetSplits(
            train=train,
            val=evaluated.pop("val"),
            test=evaluated.pop("test"),
            class_names=list(description["class_names"]),
            extra_tests=evaluated,
        )

    def train_dataloader(self):
        from litdata import StreamingDataLoader

        seed = _loader_seed()
        dataset = self._dataset("train", shuffle=True, seed=seed)
        return StreamingDataLoader(
            dataset,
            batch_size=self.batch_size * self.fused_steps,
            num_workers=self.num_workers,
            collate_fn=image_batch,
            persistent_workers=self.num_workers > 0,
            # Its own generator: a new iterator (each epoch's, and a resumed one's) draws its
            # worker seed from it, not from the global generator that augmentation and dropout
            # use, so a run resumed mid-epoch draws the same masks as an uninterrupted one.
            generator=torch.Generator().manual_seed(seed),
        )

    def trains_resident(self, device: torch.device) -> bool:
        return False

    @property
    def input_shape(self) -> list[int]:
        return list(self._described["input_shape"])

    @property
    def class_counts(self) -> list[int]:
        return list(self._described["class_counts"])

    def fingerprint(self) -> dict[str, object]:
        """The written dataset's fingerprint (its splits' SHA-256s), and where it streams from."""
        return {**self._described["fingerprint"], "type": type(self).__name__, "input_dir": self.input_dir}

    def _check_labels(self) -> None:
        """The splits in memory; the training labels were checked by the data module that
        wrote them, and streaming them all here would read the whole split."""
        for name, split in {"val": self._splits.val, **self.test_sets}.items():
            if len(split) and (split.labels.min() < 0 or split.labels.max() >= self.num_classes):
                raise ValueError(
                    f"data.input_dir={self.input_dir}: {name} labels must be in [0, {self.num_classes - 1}], "
                    f"found {split.labels.min().item()}..{split.labels.max().item()}"
                )

    def _stats(self) -> tuple[list[float], list[float]]:
        return list(self._described["mean"]), list(self._described["std"])

    @property
    def _described(self) -> dict:
        if self.description is None:
            self.description = self._read_description()
        return self.description

    def _read_description(self) -> dict:
        try:
            text = self._dataset(DESCRIPTION)[0]
        except Exception as error:  # noqa: BLE001 - LitData's own errors vary by storage
            raise ValueError(
                f"data.input_dir={self.input_dir}: no imgcls shards there ({DESCRIPTION}/ could not be read: "
                f"{type(error).__name__}: {error}); write them with `python -m imgcls.data.shards write`"
            ) from error
        description = json.loads(text)
        if description.get("format") != FORMAT:
            raise ValueError(
                f"data.input_dir={self.input_dir}: shard format {description.get('format')!r}, this imgcls reads {FORMAT}"
            )
        return description

    def _dataset(self, split: str, **options):
        return streaming_dataset(
            f"{self.input_dir}/{split}",
            cache_dir=self.cache_dir,
            max_cache_size=self.max_cache_size,
            **options,
        )

    def _in_memory(self, split: str, samples: int, shape: list[int]) -> ImageArrays:
        if not samples:
            return ImageArrays(torch.empty((0, *shape), dtype=torch.uint8), torch.empty(0, dtype=torch.long))
        dataset = self._dataset(split)
        # By global position: iterating would give a DDP process only its share.
        images, labels = image_batch([dataset[index] for index in range(samples)])
        return ImageArrays(images, labels)


if __name__ == "__main__":
    main()
