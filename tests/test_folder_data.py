"""data=folder: layouts, splits, every image format, bad input, streaming mode."""

import csv
import os
import shutil

import numpy as np
import pytest
import torch
from image_fixtures import (
    BAD_KINDS,
    FOLDER_FORMATS,
    exif_rotated_jpeg,
    make_class_folders,
    photo_variant,
    save_in_mode,
    set_up_data,
    write_bad_file,
)
from PIL import Image

from imgcls.data.decode_cache import BadImagesError
from imgcls.data.folder import FolderDataModule
from imgcls.data.image_io import ImageDecodeError, load_image

PER_CLASS = 12


@pytest.fixture(scope="module")
def class_tree(tmp_path_factory):
    return make_class_folders(tmp_path_factory.mktemp("folder") / "images", per_class=PER_CLASS)


@pytest.fixture
def copy_of_tree(class_tree, tmp_path):
    """A private copy to break things in."""
    return shutil.copytree(class_tree, tmp_path / "images", symlinks=True)


def folder_data(root, tmp_path, **overrides):
    settings = {"root": root, "image_size": (32, 32), "val_fraction": 0.25, "test_fraction": 0.25}
    return set_up_data(FolderDataModule, tmp_path, **{**settings, **overrides})


# --- decoding ---------------------------------------------------------------------------
def test_every_suffix_and_mode_decodes_to_the_same_picture(tmp_path):
    original = photo_variant("chelsea", np.random.default_rng(1), size=40)
    reference = np.asarray(original, dtype=np.float64).transpose(2, 0, 1)
    gray = np.asarray(original.convert("L"), dtype=np.float64)
    for i, (suffix, mode) in enumerate(FOLDER_FORMATS):
        path = save_in_mode(original, tmp_path / f"{i}{suffix}", mode)
        decoded = load_image(path, channels=3).astype(np.float64)
        assert decoded.shape == (3, 40, 40), (suffix, mode)
        # Gray and 16-bit keep only luminance; the rest keep colour (within JPEG/palette loss).
        expected = np.broadcast_to(gray, decoded.shape) if mode in ("L", "I;16") else reference
        assert np.abs(decoded - expected).mean() < 12, (suffix, mode)


def test_sixteen_bit_png_is_rescaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I")
    decoded = load_image(tmp_path / "ramp16.png", channels=1)[0]
    np.testing.assert_allclose(decoded, np.rint(ramp / 257.0), atol=1)
    assert decoded.min() == 0 and decoded.max() == 255 and 120 < decoded.mean() < 135


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 255  # left half white as stored
    path = exif_rotated_jpeg(tmp_path / "rotated.jpg", stored, orientation=6)  # "rotate 90 CW to view"
    decoded = load_image(path, channels=1)[0]
    assert decoded.shape == (40, 20)
    assert decoded[:20].mean() > 200 and decoded[20:].mean() < 50  # the white half is now on top


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_between_pils_warning_and_error_limits_is_refused(tmp_path, monkeypatch):
    """PIL only warns from its pixel limit up to twice it; that range must be refused too."""
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: above 1x, below 2x
    with pytest.raises(ImageDecodeError, match="decompression-bomb limit"):
        load_image(tmp_path / "big.png", channels=1)


# --- layouts and splits -----------------------------------------------------------------
def test_class_folders_are_split_stratified_and_reproducibly(class_tree, tmp_path):
    data = folder_data(class_tree, tmp_path)
    assert data.class_names == ["cat", "coffee"]  # no .ipynb_checkpoints class
    assert data.input_shape == [3, 32, 32]
    splits = data.splits
    assert len(splits.train) + len(splits.val) + len(splits.test) == 2 * PER_CLASS  # no hidden files
    for split in (splits.val, splits.test):
        assert torch.bincount(split.labels).tolist() == [3, 3]
    again = folder_data(class_tree, tmp_path)
    assert torch.equal(again.splits.val.images, splits.val.images)
    other_seed = folder_data(class_tree, tmp_path, split_seed=7)
    assert not torch.equal(other_seed.splits.val.images, splits.val.images)


def test_train_val_test_folders_are_detected_and_a_missing_one_is_carved(class_tree, tmp_path):
    root = tmp_path / "presplit"
    for split in ("Train", "test"):
        shutil.copytree(class_tree, root / split)  # the same pictures: accepted here, on purpose
    data = folder_data(root, tmp_path, val_fraction=0.25, allow_overlap=True)
    assert data.class_names == ["cat", "coffee"]
    assert len(data.splits.test) == 2 * PER_CLASS
    assert len(data.splits.val) == 6 and len(data.splits.train) == 2 * PER_CLASS - 6


def test_a_split_folder_with_other_classes_names_them(class_tree, tmp_path):
    root = tmp_path / "presplit"
    shutil.copytree(class_tree, root / "train")
    shutil.copytree(class_tree, root / "val")
    os.rename(root / "val" / "coffee", root / "val" / "tea")
    with pytest.raises(ValueError, match=r"missing \['coffee'\], extra \['tea'\]"):
        folder_data(root, tmp_path)


def test_streaming_mode_gives_the_same_uint8_batches(class_tree, tmp_path):
    cached = folder_data(class_tree, tmp_path)
    streamed = folder_data(class_tree, tmp_path, cache=False, num_workers=1)
    for loader in ("val_dataloader", "train_dataloader"):
        torch.manual_seed(0)
        a = torch.cat([batch[0] for batch in getattr(cached, loader)()])
        torch.manual_seed(0)
        b = torch.cat([batch[0] for batch in getattr(streamed, loader)()])
        assert b.dtype == torch.uint8 and torch.equal(a, b)
    assert streamed.input_shape == cached.input_shape
    np.testing.assert_allclose(streamed.mean, cached.mean)


# --- bad input ----------------------------------------------------------------------------
def test_bad_files_stop_the_run_and_every_one_is_listed(copy_of_tree, tmp_path):
    bad = [write_bad_file(copy_of_tree / "cat" / f"bad_{kind}.jpg", kind) for kind in BAD_KINDS]
    with pytest.raises(BadImagesError) as error:
        folder_data(copy_of_tree, tmp_path)
    listed = dict(line.strip().split(": ", 1) for line in str(error.value).splitlines()[1:-1])
    reasons = ["empty file", "cannot decode", "cannot decode", "cannot decode", "decompression-bomb"]
    assert sorted(listed) == sorted(map(str, bad))
    for path, reason in zip(bad, reasons, strict=True):
        assert reason in listed[str(path)]
    assert "data.skip_bad=true" in str(error.value)


def test_skip_bad_drops_and_reports_them(copy_of_tree, tmp_path):
    bad = [write_bad_file(copy_of_tree / "coffee" / f"bad_{kind}.png", kind) for kind in BAD_KINDS]
    data = folder_data(copy_of_tree, tmp_path, skip_bad=True, max_bad_fraction=0.25)
    splits = data.splits
    assert len(splits.train) + len(splits.val) + len(splits.test) == 2 * PER_CLASS
    with open(tmp_path / "run" / "bad_files.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["path"] for row in rows) == sorted(map(str, bad))
    assert all(row["reason"] for row in rows)


def test_skip_bad_still_stops_above_the_allowed_fraction(copy_of_tree, tmp_path):
    for kind in BAD_KINDS:
        write_bad_file(copy_of_tree / "coffee" / f"bad_{kind}.png", kind)
    with pytest.raises(BadImagesError, match="above data.max_bad_fraction=0.1"):
        folder_data(copy_of_tree, tmp_path, skip_bad=True, max_bad_fraction=0.1)
    assert (tmp_path / "run" / "bad_files.csv").exists()


def test_an_empty_class_folder_is_an_error(copy_of_tree, tmp_path):
    (copy_of_tree / "dog").mkdir()
    (copy_of_tree / "dog" / ".DS_Store").write_bytes(b"x")
    with pytest.raises(ValueError, match=f"class folder {copy_of_tree / 'dog'} has no image files"):
        folder_data(copy_of_tree, tmp_path)


@pytest.mark.parametrize("where", ["class_folder", "image_file"])
def test_a_symlink_loop_is_an_error_not_a_hang(copy_of_tree, tmp_path, where):
    link = copy_of_tree / "loop" if where == "class_folder" else copy_of_tree / "cat" / "loop.jpg"
    link.symlink_to(link)
    with pytest.raises(ValueError, match="symlink loop"):
        folder_data(copy_of_tree, tmp_path)


@pytest.mark.parametrize("skip_bad", [False, True])
def test_a_broken_image_link_is_a_bad_file_like_any_other(copy_of_tree, tmp_path, skip_bad):
    link = copy_of_tree / "cat" / "moved.jpg"
    link.symlink_to(copy_of_tree / "nowhere.jpg")
    if not skip_bad:
        with pytest.raises(BadImagesError, match=f"{link}: broken link or symlink loop"):
            folder_data(copy_of_tree, tmp_path)
        return
    data = folder_data(copy_of_tree, tmp_path, skip_bad=True, max_bad_fraction=0.1)
    assert len(data.splits.train) + len(data.splits.val) + len(data.splits.test) == 2 * PER_CLASS
    with open(tmp_path / "run" / "bad_files.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows] == [str(link)]
    assert "broken link" in rows[0]["reason"] and "nowhere.jpg" in rows[0]["reason"]


def test_a_folder_link_back_up_the_tree_is_not_followed(copy_of_tree, tmp_path):
    (copy_of_tree / "cat" / "up").symlink_to(copy_of_tree)
    with pytest.warns(UserWarning, match="skipped 1 entries"):
        data = folder_data(copy_of_tree, tmp_path)
    assert len(data.splits.train) + len(data.splits.val) + len(data.splits.test) == 2 * PER_CLASS


def test_the_same_picture_in_two_splits_stops_before_training(class_tree, tmp_path):
    from imgcls.data.overlap import OverlapError

    root = tmp_path / "presplit"
    shutil.copytree(class_tree, root / "train")
    (root / "test" / "cat").mkdir(parents=True)
    leaked = sorted((root / "train" / "cat").glob("*.png"))[0]
    shutil.copy(leaked, root / "test" / "cat" / "renamed.png")  # another name, the same pixels
    shutil.copy(sorted((root / "train" / "coffee").glob("*.png"))[0], root / "test" / "cat" / "other.png")
    (root / "test" / "coffee").mkdir()
    shutil.copy(sorted((class_tree / "coffee").glob("*.png"))[1], root / "test" / "coffee" / "c.png")
    with pytest.raises(OverlapError, match=r"renamed.png \(same pixels\)") as error:
        folder_data(root, tmp_path)
    assert "data.allow_overlap=true" in str(error.value) and leaked.name in str(error.value)
    accepted = folder_data(root, tmp_path, allow_overlap=True)
    assert len(accepted.overlaps) == 3 and any("renamed.png" in line for line in accepted.overlaps)
