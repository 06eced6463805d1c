"""Dataset inspection: counts, sizes, modes, sample grids and problems, in files and TensorBoard."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from cifar_fixture import cifar_images, write_batch, write_cifar10
from conftest import CONF_DIR, REPO
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from imgcls.config import register_resolvers
from imgcls.data.arrays import ImageArrays
from imgcls.data.datamodule import DatasetSplits, ImageDataModule
from imgcls.data.image_io import load_image
from imgcls.inspection.report import DatasetLoadError, inspect_dataset
from imgcls.reports.figures import CJK_FONTS, plt

CJK_FONT = any(name in CJK_FONTS for name in plt.rcParams["font.sans-serif"])


class CsvListedFiles(ImageDataModule):
    """A small CSV dataset (``path,label,split`` rows) shaped like the project's file datasets:
    ``list_files()`` lists without decoding and refuses unknown labels; setup decodes."""

    def __init__(self, csv: str, class_names: list[str], size: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.csv, self.names, self.size = csv, list(class_names), size

    def list_files(self):
        table = pd.read_csv(self.csv, dtype=str)
        unknown = table.index[~table["label"].isin(self.names)]
        if len(unknown):
            raise ValueError(f"{self.csv}: unknown labels on rows {[i + 2 for i in unknown]}")
        parts = {
            split: SimpleNamespace(
                paths=list(table.loc[table["split"] == split, "path"]),
                labels=np.array([self.names.index(x) for x in table.loc[table["split"] == split, "label"]]),
            )
            for split in ("train", "val", "test")
        }
        return SimpleNamespace(**parts, class_names=self.names)

    def load_splits(self) -> DatasetSplits:
        listing = self.list_files()

        def arrays(part):
            images = [load_image(p, channels=3, size=(self.size, self.size)) for p in part.paths]
            return ImageArrays(torch.from_numpy(np.stack(images)), torch.from_numpy(part.labels))

        return DatasetSplits(arrays(listing.train), arrays(listing.val), arrays(listing.test), self.names)


def inspect_config(tmp_path, *overrides, data: dict | None = None):
    """conf/inspect.yaml as ``inspect_data.py`` composes it; ``data`` replaces the data config."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="inspect", overrides=[f"paths.output_dir={tmp_path / 'report'}", *overrides]
        )
    if data is not None:
        cfg.data = OmegaConf.create(data)
    return cfg


def csv_dataset(tmp_path, rows, class_names=("cat", "coffee")) -> dict:
    """The data config of a CSV dataset listing ``rows`` of (path, label, split)."""
    table = tmp_path / "images.csv"
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(table, index=False)
    return {"_target_": f"{__name__}.CsvListedFiles", "csv": str(table), "class_names": list(class_names)}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photos in several sizes and modes: RGB JPEGs, a grayscale PNG and a palette GIF."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    cat, coffee = Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())
    files = {
        "cat_a.jpg": cat.resize((60, 40)),
        "cat_b.png": cat.resize((45, 30)).convert("L"),
        "cat_c.jpg": cat.crop((0, 0, 200, 150)).resize((80, 60)),
        "coffee_a.jpg": coffee.resize((60, 40)),
        "coffee_b.gif": coffee.resize((90, 60)).convert("P"),
        "coffee_c.jpg": coffee.crop((100, 100, 300, 300)).resize((50, 50)),
    }
    for name, image in files.items():
        image.save(root / name)
    return root


@pytest.mark.e2e
def test_file_dataset_report(tmp_path, photos):
    shutil.copy(photos / "cat_a.jpg", tmp_path / "cat_a_copy.jpg")  # the same bytes under another name
    rows = [
        (photos / "cat_a.jpg", "cat", "train"),
        (photos / "cat_b.png", "cat", "train"),
        (photos / "coffee_a.jpg", "coffee", "train"),
        (photos / "coffee_b.gif", "coffee", "train"),
        (photos / "cat_c.jpg", "cat", "val"),
        (photos / "coffee_c.jpg", "coffee", "val"),
        (tmp_path / "cat_a_copy.jpg", "cat", "test"),
        (photos / "coffee_a.jpg", "coffee", "test"),  # the very file used for training
    ]
    rows = [(path, {"cat": "猫", "coffee": "咖啡"}[label], split) for path, label, split in rows]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_dir = inspect_dataset(inspect_config(tmp_path, data=csv_dataset(tmp_path, rows, ("猫", "咖啡"))))
    if CJK_FONT:  # Chinese class names are drawn in every figure, not as empty boxes
        assert not [w for w in caught if "missing from font" in str(w.message)]

    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["described_from"] == "original files"
    assert summary["class_names"] == ["猫", "咖啡"]
    assert summary["split_sizes"] == {"train": 4, "val": 2, "test": 2}
    counts = pd.read_csv(run_dir / "class_counts.csv", index_col="class")
    assert counts.to_dict("index") == {
        "猫": {"train": 2, "val": 1, "test": 1, "total": 4},
        "咖啡": {"train": 2, "val": 1, "test": 1, "total": 4},
    }
    assert summary["imbalance_ratio"] == 1.0
    # Sizes and modes of the original files, not of the 16x16 arrays trained on.
    sizes = pd.read_csv(run_dir / "image_sizes.csv", index_col="split")
    assert sizes.loc["train", ["height_min", "height_max", "width_min", "width_max"]].tolist() == [
        30,
        60,
        45,
        90,
    ]
    modes = pd.read_csv(run_dir / "image_modes.csv", index_col="mode")
    assert modes["train"].to_dict() == {"L": 1, "P": 1, "RGB": 2}
    problems = pd.read_csv(run_dir / "problems.csv")
    found = {(p, Path(i).name) for p, i in zip(problems["problem"], problems["item"], strict=True)}
    assert found == {
        ("leakage_same_file", "coffee_a.jpg"),
        ("leakage_same_content", "cat_a.jpg"),
        ("leakage_same_content", "cat_a_copy.jpg"),
    }
    assert {"class_counts.png", "image_sizes.png", "samples.png", "report.md"} <= {
        p.name for p in run_dir.iterdir()
    }


def test_problems_are_reported_even_when_loading_fails(tmp_path, photos):
    (tmp_path / "notes.jpg").write_text("a text file with an image suffix")
    rows = [
        (photos / "cat_a.jpg", "cat", "train"),
        (photos / "cat_a.jpg", "cat", "train"),  # listed twice
        (tmp_path / "gone.jpg", "cat", "train"),
        (tmp_path / "notes.jpg", "coffee", "train"),
        (photos / "coffee_a.jpg", "coffee", "val"),
        (photos / "coffee_c.jpg", "coffee", "test"),
    ]
    with pytest.raises(DatasetLoadError, match="gone.jpg"):
        inspect_dataset(inspect_config(tmp_path, data=csv_dataset(tmp_path, rows)))
    run_dir = tmp_path / "report"
    problems = pd.read_csv(run_dir / "problems.csv")
    found = {(p, Path(i).name) for p, i in zip(problems["problem"], problems["item"], strict=True)}
    assert {
        ("missing_file", "gone.jpg"),
        ("duplicate_id", "cat_a.jpg"),
        ("unreadable_file", "notes.jpg"),
    } <= found
    assert problems.loc[0, "problem"] == "load_error"
    report = (run_dir / "report.md").read_text()
    assert "could not be loaded" in report and "missing_file" in report
    # Counts come from the listing when the images cannot be loaded.
    assert json.loads((run_dir / "summary.json").read_text())["split_sizes"] == {
        "train": 4,
        "val": 1,
        "test": 1,
    }


def test_a_listing_that_refuses_the_csv_is_the_finding(tmp_path, photos):
    rows = [(photos / "cat_a.jpg", "cat", "train"), (photos / "coffee_a.jpg", "tea", "train")]
    with pytest.raises(DatasetLoadError, match=r"unknown labels on rows \[3\]"):
        inspect_dataset(inspect_config(tmp_path, data=csv_dataset(tmp_path, rows)))
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["problems"] == {"load_error": 1} and "unknown labels" in summary["load_error"]


@pytest.mark.e2e
def test_digits_report_and_tensorboard(tmp_path):
    run_dir = inspect_dataset(inspect_config(tmp_path, "data=digits", "inspect.samples_per_class=3"))
    counts = pd.read_csv(run_dir / "class_counts.csv", index_col="class")
    assert counts["total"].sum() == 1797 and list(counts.index) == list(range(10))
    train = counts["train"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["imbalance_ratio"] == pytest.approx(train.max() / train.min())
    assert summary["described_from"] == "arrays in memory" and summary["problems"] == {}
    # 8x8 digits are too small for perceptual hashes: not searched, and the report says why
    assert summary["near_duplicates"] is None and not (run_dir / "near_duplicates.csv").exists()
    assert "under inspect.near_duplicate_min_side=16" in (run_dir / "report.md").read_text()
    sizes = pd.read_csv(run_dir / "image_sizes.csv", index_col="split")
    assert set(sizes["height_max"]) == {8} and set(sizes["width_min"]) == {8}

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert set(events.Tags()["images"]) == {
        "inspection/class_counts",
        "inspection/image_sizes",
        "inspection/samples",
    }
    assert "inspection/report/text_summary" in events.Tags()["tensors"]


@pytest.mark.e2e
def test_cifar_cli_finds_test_images_that_are_also_training_images(tmp_path):
    folder = write_cifar10(tmp_path / "cifar", per_batch=100)
    data, labels = cifar_images(600, seed=0)
    leaked = data[500:].copy()
    leaked[:3] = data[[5, 17, 250]]  # three test images are copies of training images
    write_batch(folder / "test_batch", leaked, labels[500:])
    command = [
        sys.executable,
        "inspect_data.py",
        "data=cifar10",
        f"data.data_dir={tmp_path / 'cifar'}",
        "data.val_size=50",
        f"paths.log_dir={tmp_path / 'logs'}",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "inspect" / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["split_sizes"] == {"train": 450, "val": 50, "test": 100}
    assert summary["class_names"][:3] == ["zero", "one", "two"]
    problems = pd.read_csv(run_dir / "problems.csv")
    assert set(problems["problem"]) == {"leakage_same_content"}
    assert sorted(problems.loc[problems["split"] == "test", "item"]) == ["test[0]", "test[1]", "test[2]"]
    modes = pd.read_csv(run_dir / "image_modes.csv", index_col="mode")
    assert modes.to_dict("index") == {"RGB": {"train": 450, "val": 50, "test": 100}}


@pytest.mark.e2e
def test_a_folder_with_bad_files_reports_them_and_describes_the_good_ones(tmp_path):
    from image_fixtures import make_class_folders, write_bad_file

    root = make_class_folders(tmp_path / "images", per_class=4, size=16)
    bad = [write_bad_file(root / "cat" / f"bad_{kind}.jpg", kind) for kind in ("truncated", "empty", "not_image")]
    (root / "coffee" / "moved.jpg").symlink_to(tmp_path / "nowhere.jpg")
    bad.append(root / "coffee" / "moved.jpg")
    cfg = inspect_config(
        tmp_path, "data=folder", f"data.root={root}", "data.image_size=[16,16]",
        f"data.cache_dir={tmp_path / 'cache'}", "data.progress=false",
    )
    run_dir = inspect_dataset(cfg)  # no error: the bad files are findings

    listed = pd.read_csv(run_dir / "bad_files.csv")
    assert sorted(listed["path"]) == sorted(map(str, bad)) and listed["reason"].str.len().min() > 0
    problems = pd.read_csv(run_dir / "problems.csv")
    unreadable = problems[problems["problem"] == "unreadable_file"]
    assert sorted(unreadable["item"]) == sorted(map(str, bad))  # the truncated one too (decoded)
    assert "broken link" in unreadable.set_index("item").loc[str(bad[-1]), "detail"]
    assert (run_dir / "samples.png").exists()
    assert pd.read_csv(run_dir / "class_counts.csv", index_col="class")["total"].to_dict() == {"cat": 4, "coffee": 4}
    assert "`bad_files.csv`" in (run_dir / "report.md").read_text()


def test_near_duplicates_across_splits_are_found_and_distinct_images_are_not(tmp_path, photos):
    from PIL import ImageEnhance
    from skimage import data

    # A training photo, enlarged, 10% brighter and saved again as a low-quality JPEG, in test.
    edited = Image.open(photos / "cat_a.jpg").resize((90, 60))
    ImageEnhance.Brightness(edited).enhance(1.1).save(tmp_path / "cat_edited.jpg", quality=60)
    Image.fromarray(data.astronaut()).resize((64, 64)).save(tmp_path / "astronaut.png")
    Image.fromarray(data.camera()).resize((64, 64)).save(tmp_path / "camera.png")
    rows = [
        (photos / "cat_a.jpg", "cat", "train"),
        (photos / "cat_b.png", "cat", "train"),  # cat_a in gray, smaller: near the edited copy too
        (photos / "coffee_a.jpg", "coffee", "train"),
        (photos / "coffee_c.jpg", "coffee", "val"),
        (tmp_path / "astronaut.png", "cat", "val"),
        (tmp_path / "cat_edited.jpg", "cat", "test"),
        (photos / "cat_c.jpg", "cat", "test"),  # another framing of the same cat: a different image
        (tmp_path / "camera.png", "coffee", "test"),
    ]
    data_cfg = {**csv_dataset(tmp_path, rows), "size": 64}
    run_dir = inspect_dataset(inspect_config(tmp_path, data=data_cfg))
    near = pd.read_csv(run_dir / "near_duplicates.csv")
    found = [(a, Path(x).name, b, Path(y).name, j) for a, x, _, b, y, j, _ in near.itertuples(index=False)]
    assert found == [
        ("train", "cat_a.jpg", "test", "cat_edited.jpg", 0),
        ("train", "cat_b.png", "test", "cat_edited.jpg", 0),
    ]
    assert (near["distance"] <= 6).all()
    assert json.loads((run_dir / "summary.json").read_text())["near_duplicates"] == 2
    assert "](near_duplicates.png)" in (run_dir / "report.md").read_text()
    assert (run_dir / "near_duplicates.png").stat().st_size
    assert pd.read_csv(run_dir / "problems.csv").empty  # no exact copy: other bytes, other pixels
