"""Your own images in class folders (seed 000: "collect at least 200 images per category").

Two layouts, detected from the folder names:

* ``root/<class>/*``: split into train/val/test by seeded, stratified fractions;
* ``root/{train,val,test}/<class>/*``: the split is yours; a missing ``val`` or ``test``
  folder is carved out of ``train`` by the configured fraction.
"""

from __future__ import annotations

from pathlib import Path

from imgcls.data.file_datamodule import FileDataModule, FileSamples, FileSplits
from imgcls.data.image_folders import (
    ImageFolderError,
    check_same_classes,
    list_class_folders,
    samples_of,
    visible_entries,
)
from imgcls.data.splits import stratified_split

SPLIT_NAMES = ("train", "val", "test")


class FolderDataModule(FileDataModule):
    def __init__(
        self,
        root: str | Path,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 42,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)

    def list_files(self) -> FileSplits:
        split_dirs = presplit_folders(self.root)
        if not split_dirs:
            folders = list_class_folders(self.root)
            class_names = list(folders)
            return self._carve(samples_of(folders, class_names), class_names, ("val", "test"))

        train = list_class_folders(split_dirs["train"])
        class_names = list(train)
        given = {"train": samples_of(train, class_names)}
        for name in ("val", "test"):
            if name in split_dirs:
                folders = list_class_folders(split_dirs[name])
                check_same_classes(class_names, list(folders), split_dirs[name])
                given[name] = samples_of(folders, class_names)
        if len(given) == len(SPLIT_NAMES):
            return FileSplits(given["train"], given["val"], given["test"], class_names)
        carved = self._carve(given["train"], class_names, [n for n in ("val", "test") if n not in given])
        return FileSplits(
            train=carved.train,
            val=given.get("val", carved.val),
            test=given.get("test", carved.test),
            class_names=class_names,
        )

    def _carve(self, samples: FileSamples, class_names: list[str], parts) -> FileSplits:
        """Seeded, stratified ``parts`` (of "val", "test") out of ``samples``; the rest is train."""
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        split = stratified_split(samples.labels, {p: fractions[p] for p in parts}, seed=self.split_seed)
        empty = samples.subset([])
        return FileSplits(
            train=samples.subset(split["train"]),
            val=samples.subset(split["val"]) if "val" in split else empty,
            test=samples.subset(split["test"]) if "test" in split else empty,
            class_names=class_names,
        )


def presplit_folders(root: Path) -> dict[str, Path]:
    """``{"train": root/train, ...}`` when root holds only split folders (any case), else ``{}``."""
    if not root.is_dir():
        raise ImageFolderError(f"data.root={root} does not exist or is not a directory")
    folders = {entry.name.lower(): Path(entry.path) for entry in visible_entries(root) if entry.is_dir()}
    if "train" in folders and set(folders) <= set(SPLIT_NAMES):
        return folders
    return {}
