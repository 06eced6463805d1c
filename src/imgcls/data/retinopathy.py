"""Diabetic retinopathy fundus photos (seed 003): 5 ordinal grades, heavily imbalanced.

Labels come from ``train_img.csv``/``train_label.csv``/``test_img.csv``/``test_label.csv``
(one column each, with or without a header line) or from one Kaggle-style table with
``image,level`` columns; images are ``<image_dir>/<id><image_suffix>``. Validation (and the
test split, when no test labels are given) is a seeded, stratified fraction of train.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imgcls.data.file_datamodule import FileDataModule, FileSamples, FileSplits
from imgcls.data.image_io import IMAGE_SUFFIXES
from imgcls.data.label_csv import (
    LabelCSVError,
    LabelledIds,
    check_labels_and_files,
    read_column_pair,
    read_table,
)
from imgcls.data.splits import stratified_split

GRADES = ["No DR", "Mild", "Moderate", "Severe", "Proliferative DR"]


class RetinopathyDataModule(FileDataModule):
    def __init__(
        self,
        root: str | Path,
        image_dir: str | Path | None = None,
        image_suffix: str = ".jpeg",
        train_images: str = "train_img.csv",
        train_labels: str = "train_label.csv",
        test_images: str | None = "test_img.csv",
        test_labels: str | None = "test_label.csv",
        labels_csv: str | None = None,
        test_labels_csv: str | None = None,
        image_column: str = "image",
        label_column: str = "level",
        header: str | bool = "auto",
        class_names: Sequence[str] = tuple(GRADES),
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 42,
        **kwargs,
    ):
        kwargs.setdefault("ordinal", True)
        super().__init__(**kwargs)
        self.root = Path(root)
        self.image_dir = self.root / image_dir if image_dir else self.root
        self.image_suffix = image_suffix
        self.pair_files = {"train": (train_images, train_labels), "test": (test_images, test_labels)}
        self.tables = {"train": labels_csv, "test": test_labels_csv}
        self.columns = (image_column, label_column)
        self.header = header
        self.grade_names = [str(name) for name in class_names]
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.split_seed = int(split_seed)

    def list_files(self) -> FileSplits:
        train = self._samples(self._read("train"))
        test_table = self._read("test")
        fractions = {"val": self.val_fraction}
        if test_table is None:
            fractions["test"] = self.test_fraction
        split = stratified_split(train.labels, fractions, seed=self.split_seed)
        return FileSplits(
            train=train.subset(split["train"]),
            val=train.subset(split["val"]),
            test=self._samples(test_table) if test_table is not None else train.subset(split["test"]),
            class_names=self.grade_names,
        )

    def image_path(self, image_id: str) -> Path:
        """``<image_dir>/<id><suffix>``; an id that already ends in an image suffix is kept as is."""
        has_suffix = Path(image_id).suffix.lower() in IMAGE_SUFFIXES
        return self.image_dir / (image_id if has_suffix else f"{image_id}{self.image_suffix}")

    def _read(self, split: str) -> LabelledIds | None:
        """The split's ids and labels from the table layout if configured, else the file pair."""
        if self.tables["train"]:
            table = self.tables[split]
            return read_table(self.root / table, *self.columns) if table else None
        images, labels = self.pair_files[split]
        if split == "test" and not (images and labels):
            return None
        return read_column_pair(
            self.root / images,
            self.root / labels,
            self.header,
            id_is_file=lambda v: self.image_path(v).is_file(),
        )

    def _samples(self, table: LabelledIds) -> FileSamples:
        try:
            paths = check_labels_and_files(table, len(self.grade_names), self.image_path)
        except LabelCSVError as error:
            hint = self._image_dir_hint(table)
            if hint:
                raise LabelCSVError(f"{error}\n{hint}") from None
            raise
        return FileSamples(paths, table.labels)

    def _image_dir_hint(self, table: LabelledIds) -> str:
        """Where the listed images are, when they are in a sub-folder of ``root`` (Kaggle's
        archives unpack into ``train/``) rather than where ``data.image_dir`` says."""
        missing = [i for i in table.ids if not self.image_path(i).is_file()]
        if not missing:
            return ""
        name = self.image_path(missing[0]).name
        for found in (*self.root.glob(f"*/{name}"), *self.root.glob(f"*/*/{name}")):
            folder = found.parent.relative_to(self.root)
            return (
                f"{name} is in {found.parent}: images are read from <root>/<data.image_dir>/<id>"
                f"{self.image_suffix}, so set data.image_dir={folder.as_posix()}"
            )
        return ""
