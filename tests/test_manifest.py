"""manifest.json: code, packages, command, seed, machine and a fingerprint of the data."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from digits_run import trained_digits_run
from image_fixtures import make_class_folders, set_up_data
from PIL import Image

from imgcls.data.digits import DigitsDataModule
from imgcls.data.folder import FolderDataModule

SETTINGS = {"image_size": (16, 16), "val_fraction": 0.25, "test_fraction": 0.25}


def test_the_fingerprint_of_a_folder_changes_when_one_file_changes(tmp_path):
    root = make_class_folders(tmp_path / "images", per_class=6, size=24)
    first = set_up_data(FolderDataModule, tmp_path / "a", root=root, **SETTINGS).fingerprint()
    again = set_up_data(FolderDataModule, tmp_path / "b", root=root, **SETTINGS).fingerprint()
    assert first == again  # a stat of each file, not a decode: the same files, the same print

    victim = next(root.glob("cat/cat_001.*"))
    with Image.open(victim) as image:
        changed_picture = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    changed_picture.save(victim, format=changed_picture.format or image.format)
    changed = set_up_data(FolderDataModule, tmp_path / "c", root=root, **SETTINGS).fingerprint()
    differing = [name for name in first["splits"] if first["splits"][name] != changed["splits"][name]]
    assert len(differing) == 1  # only the split that holds the file

    os.utime(victim, ns=(1, 1))  # same bytes, another modification time: maybe another file
    assert set_up_data(FolderDataModule, tmp_path / "d", root=root, **SETTINGS).fingerprint() != changed


def test_the_fingerprint_of_arrays_changes_with_one_pixel_or_label():
    data = DigitsDataModule()
    data.setup("fit")
    first = data.fingerprint()
    assert first["splits"]["train"]["samples"] == len(data.split("train"))
    data.splits.test.images[0, 0, 0, 0] += 1
    pixel = data.fingerprint()
    assert pixel["splits"]["test"] != first["splits"]["test"]
    assert pixel["splits"]["train"] == first["splits"]["train"]
    data.splits.train.labels[0] = (data.splits.train.labels[0] + 1) % 10
    assert data.fingerprint()["splits"]["train"] != first["splits"]["train"]


@pytest.mark.e2e
def test_a_run_writes_its_manifest(tmp_path_factory):
    from conftest import REPO

    run_dir = trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    if head.returncode == 0:
        assert manifest["git"]["commit"] == head.stdout.strip()
        assert isinstance(manifest["git"]["dirty"], bool)
    for package in ("torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "numpy"):
        assert manifest["packages"][package], package
    assert manifest["seed"] == 42 and manifest["command"]
    assert manifest["machine"]["cpu_count"] >= 1 and manifest["machine"]["cpu"]
    data = DigitsDataModule()
    data.setup("fit")
    assert manifest["data"] == json.loads(json.dumps(data.fingerprint()))
