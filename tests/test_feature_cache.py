"""The frozen-backbone feature cache: each image through the backbone once, the same test
metrics as without it, and when it switches on (model.cache_features)."""

from __future__ import annotations

import json
import logging

import lightning as L
import pytest
import torch
from conftest import compose_config

from imgcls.config import ConfigError
from imgcls.models.feature_cache import FeatureCache
from imgcls.training.run import train

# A tiny frozen timm net on the real digits, a few batches per epoch: seconds per run.
RUN = (
    "model=timm",
    "model.name=resnet10t",
    "model.finetune=frozen",
    "model.input_size=[16,16]",
    "data.augment.crop_padding=0",
    "data.augment.hflip=false",
    "data.augment.rotation=0",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "data.batch_size=32",
    "optimizer.lr=0.05",
    "logger=none",
    "report=false",
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


class BackboneImages(L.Callback):
    """Counts the images the backbone's stem sees during fit."""

    def __init__(self):
        self.images = 0

    def on_fit_start(self, trainer, pl_module):
        self.model = pl_module
        stem = pl_module.net.model.conv1
        stem.register_forward_hook(
            lambda module, args, out: setattr(self, "images", self.images + len(args[0]))
        )


def run(tmp_path, name: str, *overrides: str) -> tuple[dict, BackboneImages, str]:
    counter = BackboneImages()
    cfg = compose_config(*RUN, *overrides, output_dir=tmp_path / name)
    train(cfg, extra_callbacks=[counter])
    metrics = json.loads((tmp_path / name / "metrics.json").read_text())
    return metrics, counter, (tmp_path / name / "resolved.yaml").read_text()


@pytest.mark.e2e
def test_cached_run_sees_each_image_once_and_matches_the_uncached_test_metrics(tmp_path):
    cached, cached_images, resolved = run(tmp_path, "cached")
    assert "cache_features: true" in resolved  # automatic: frozen, no augmentation
    plain, plain_images, resolved = run(tmp_path, "plain", "model.cache_features=false")
    assert "cache_features: false" in resolved
    # Cached: every image (train, val, test) through the backbone exactly once.
    cache = cached_images.model.feature_cache
    assert cached_images.images == sum(cache.cached(split) for split in ("train", "val", "test"))
    # Training saw at most 4 batches an epoch; the passes after it (temperature scaling on val,
    # suspect labels on train and val) take the splits whole, through the same cache.
    assert 4 * 32 <= cache.cached("train") and cache.cached("val") > 2 * 32
    # Uncached: every epoch's batches, the sanity check's and those passes go through it.
    assert plain_images.images >= 3 * (4 + 2) * 32 + cache.cached("val") > cached_images.images
    for key, value in plain["test"].items():
        assert cached["test"][key] == pytest.approx(value, abs=1e-4), key
    assert cached["best"]["val/acc"] == pytest.approx(plain["best"]["val/acc"], abs=1e-4)


def test_lookup_computes_only_what_is_missing():
    cache, seen = FeatureCache(), []

    def compute(pick, batch):
        seen.append(batch[pick].tolist())
        return batch[pick].float().unsqueeze(1) * 10

    first = torch.tensor([3, 1])
    assert cache.lookup("train", first, lambda pick: compute(pick, first)).flatten().tolist() == [30, 10]
    second = torch.tensor([1, 7, 3])
    assert cache.lookup("train", second, lambda pick: compute(pick, second)).flatten().tolist() == [
        10,
        70,
        30,
    ]
    assert seen == [[3, 1], [7]] and cache.cached("train") == 3 and cache.cached("val") == 0


def test_when_the_cache_switches_on(tmp_path, caplog):
    from imgcls.training.run import compose

    caplog.set_level(logging.INFO, logger="imgcls")

    def resolved(*overrides):
        cfg = compose_config(*overrides, output_dir=tmp_path / "run")
        datamodule, model, *_, resolved = compose(cfg)
        return resolved["cache_features"], datamodule

    base = ("model=timm", "model.name=resnet10t", "model.input_size=[16,16]")
    assert resolved(*base, "model.finetune=frozen")[0] is True  # the digits have no augmentation
    assert resolved(*base, "model.finetune=frozen", "data.augment.hflip=true")[0] is False
    assert resolved(*base, "model.finetune=gradual")[0] is False  # automatic: frozen only
    on, datamodule = resolved(
        *base, "model.finetune=gradual", "model.cache_features=true", "data.augment.hflip=true"
    )
    assert on and datamodule.augment.is_identity and datamodule.train_positions
    assert "train-time augmentation (crop_padding=0, hflip=True" in caplog.text
    assert resolved(*base, "model.finetune=frozen", "model.cache_features=false")[0] is False
    with pytest.raises(ConfigError, match="model.finetune=frozen or gradual"):
        resolved(*base, "model.cache_features=true")
    with pytest.raises(ConfigError, match="fused_steps=4"):
        resolved(*base, "model.finetune=frozen", "model.cache_features=true", "fused_steps=4")


def test_dropout_outside_the_head_keeps_the_cache_off_unless_the_head_holds_it(tmp_path):
    from imgcls.training.run import compose

    def cached(*overrides):
        cfg = compose_config(
            "model=mobilenet_v2", "model.finetune=frozen", *overrides, output_dir=tmp_path / "run"
        )
        return compose(cfg)[-1]["cache_features"]

    # The default head is the classifier block: Dropout(0.2), then the new layer.
    assert cached() is True
    assert cached("model.head=classifier.1") is False  # the dropout outside the head
    assert cached("model.head=classifier.1", "model.cache_features=true") is True


@pytest.mark.e2e
def test_gradual_uses_the_cache_until_the_backbone_unfreezes(tmp_path):
    metrics, counter, resolved = run(
        tmp_path,
        "gradual",
        "model.finetune=gradual",
        "model.cache_features=true",
        "model.unfreeze_at_epoch=1",
        "trainer.max_epochs=2",
    )
    assert "cache_features: true" in resolved and metrics["status"] == "ok"
    # Epoch 0 cached (the sanity check's and epoch 0's images once); epoch 1 trains the backbone
    # on every batch, and its features are no longer kept.
    assert counter.model.feature_cache.cached("train") == 0
    assert all(p.requires_grad for p in counter.model.net.parameters())
