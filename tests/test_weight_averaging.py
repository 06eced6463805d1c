"""callbacks=ema: validation, the best checkpoint, the test pass and the report use the
EMA of the weights (Lightning's EMAWeightAveraging), and metrics.json says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imgcls.config import ConfigError
from imgcls.data.augment import to_unit_float
from imgcls.models.classifier import ImageClassifier
from imgcls.training.run import build_datamodule, train
from imgcls.training.weight_averaging import EMA

TINY = ("trainer.max_epochs=2", "trainer.limit_train_batches=6", "logger=csv", "optimizer.lr=3e-3")


def _test_loss_and_acc(model: ImageClassifier, datamodule) -> tuple[float, float]:
    test = datamodule.test_sets["test"]
    model.eval()
    with torch.no_grad():
        logits = model(to_unit_float(test.images))
    loss = torch.nn.functional.cross_entropy(logits.double(), test.labels)
    return float(loss), float((logits.argmax(1) == test.labels).double().mean())


@pytest.mark.e2e
def test_ema_weights_are_the_ones_validated_checkpointed_and_tested(config_factory):
    cfg = config_factory("callbacks=ema", "callbacks.ema.decay=0.9", *TINY)
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok" and record["weights"] == "ema (decay 0.9)"
    assert "averaged weights: ema (decay 0.9)" in (run_dir / "report" / "report.md").read_text()

    checkpoint = torch.load(record["best_checkpoint"], weights_only=True)
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged if k.startswith("net."))

    datamodule = build_datamodule(cfg)
    model = ImageClassifier.from_checkpoint(record["best_checkpoint"])
    ema_loss, ema_acc = _test_loss_and_acc(model, datamodule)
    assert record["test"]["test/loss"] == pytest.approx(ema_loss, rel=1e-5)
    assert record["test"]["test/acc"] == pytest.approx(ema_acc)
    model.load_state_dict(raw)
    raw_loss, _ = _test_loss_and_acc(model, datamodule)
    assert abs(raw_loss - ema_loss) > 1e-3  # the test pass did not evaluate the raw weights


@pytest.mark.e2e
def test_plain_runs_record_raw_weights(config_factory):
    cfg = config_factory("trainer.max_epochs=1", "trainer.limit_train_batches=2", "logger=none", "report=false")
    train(cfg)
    assert json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())["weights"] == "raw"


@pytest.mark.parametrize("decay", [0, 1, 1.5, "abc"])
def test_bad_decay_is_named(decay):
    with pytest.raises(ConfigError, match="callbacks.ema.decay"):
        EMA(decay=decay)
