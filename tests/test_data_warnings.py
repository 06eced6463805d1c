"""Data too small or skewed to train or judge a model: warned in the console, metrics.json, report.md."""

import json
import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import compose_config
from PIL import Image

from imgcls.training.data_warnings import DataWarnings


def _folder(root, per_class: dict[str, int]):
    rng = np.random.default_rng(0)
    for index, (name, count) in enumerate(per_class.items()):
        os.makedirs(root / name)
        for i in range(count):
            pixels = np.clip(rng.normal(80 * index + 40, 20, (8, 8)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


@pytest.mark.e2e
def test_few_steps_with_batchnorm_and_a_class_missing_from_val_are_warned(tmp_path, caplog):
    from imgcls.training.run import train

    root = _folder(tmp_path / "images", {"a": 10, "b": 10, "rare": 1})  # 'rare' cannot be in val
    cfg = compose_config(
        "data=folder", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.image_size=[8,8]", "data.channels=1", "data.batch_size=8", "data.val_fraction=0.3",
        "data.test_fraction=0.3", "data.augment.hflip=false", "data.augment.crop_padding=0",
        "model=cnn_bn", "trainer.max_epochs=1", "logger=none",
        output_dir=tmp_path / "run",
    )
    with caplog.at_level(logging.WARNING, logger="imgcls"):
        train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    warned = record["warnings"]
    assert any("optimizer steps per epoch" in w and "BatchNorm" in w for w in warned), warned
    assert any("the val split has no images of 1 of 3 classes (rare)" in w for w in warned), warned
    assert all(w in caplog.text for w in warned)  # the console and train.log
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "Data warning: the val split has no images" in report


def test_a_model_that_predicts_one_class_for_every_validation_image_is_warned(caplog):
    callback = DataWarnings()
    trainer = SimpleNamespace(sanity_checking=False, datamodule=SimpleNamespace(class_names=["cat", "dog"]))
    module = SimpleNamespace(hparams=SimpleNamespace(num_classes=2))
    for epoch_logits in ([[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.2, 0.9]]):  # the 2nd epoch collapsed
        callback.on_validation_epoch_start(trainer, module)
        callback.on_validation_batch_end(trainer, module, torch.tensor(epoch_logits), None, 0)
        callback.on_validation_epoch_end(trainer, module)
    with caplog.at_level(logging.WARNING, logger="imgcls"):
        callback.on_fit_end(trainer, module)
    assert len(callback.warnings) == 1 and "predicts one class (dog)" in callback.warnings[0]
    assert "predicts one class (dog)" in caplog.text


def test_a_model_that_tells_classes_apart_is_not_warned():
    callback = DataWarnings()
    trainer = SimpleNamespace(sanity_checking=False, datamodule=SimpleNamespace(class_names=["cat", "dog"]))
    module = SimpleNamespace(hparams=SimpleNamespace(num_classes=2))
    callback.on_validation_epoch_start(trainer, module)
    callback.on_validation_batch_end(trainer, module, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), None, 0)
    callback.on_validation_epoch_end(trainer, module)
    callback.on_fit_end(trainer, module)
    assert callback.warnings == []
