"""CASIA handwritten Chinese characters (seed 004): ``root/Train/<character>/*.png`` and
``root/Test/<character>/*.png``, one UTF-8 folder per character, grayscale.

Validation is a seeded, stratified fraction of Train. Extra test sets in the Test layout
(seed 004's "poorly written" set) are tested after training and reported as
``test_<name>/...``; their characters must be exactly the training ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from imgcls.data.file_datamodule import FileDataModule, FileSplits
from imgcls.data.image_folders import check_same_classes, list_class_folders, samples_of
from imgcls.data.splits import stratified_split


class CasiaDataModule(FileDataModule):
    def __init__(
        self,
        root: str | Path,
        train_dir: str = "Train",
        test_dir: str = "Test",
        val_fraction: float = 0.2,
        split_seed: int = 42,
        extra_test: Mapping[str, str | Path] | None = None,
        **kwargs,
    ):
        kwargs.setdefault("image_size", (80, 60))
        kwargs.setdefault("channels", 1)
        super().__init__(**kwargs)
        self.root = Path(root)
        self.train_dir, self.test_dir = train_dir, test_dir
        self.val_fraction = float(val_fraction)
        self.split_seed = int(split_seed)
        self.extra_test = {str(name): Path(path) for name, path in (extra_test or {}).items()}
        for name in self.extra_test:
            if name == "test" or not name.isidentifier():
                raise ValueError(f"data.extra_test name {name!r} must be a plain name other than 'test'")

    def list_files(self) -> FileSplits:
        train_folders = list_class_folders(self.root / self.train_dir)
        class_names = list(train_folders)
        train = samples_of(train_folders, class_names)
        split = stratified_split(train.labels, {"val": self.val_fraction}, seed=self.split_seed)
        return FileSplits(
            train=train.subset(split["train"]),
            val=train.subset(split["val"]),
            test=self._test_set(self.root / self.test_dir, class_names),
            class_names=class_names,
            extra_tests={name: self._test_set(path, class_names) for name, path in self.extra_test.items()},
        )

    @staticmethod
    def _test_set(directory: Path, class_names: list[str]):
        folders = list_class_folders(directory)
        check_same_classes(class_names, list(folders), directory)
        return samples_of(folders, class_names)
