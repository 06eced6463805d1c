"""A run's directory, its record, and testing on the best (not the last) weights."""

import json
from pathlib import Path

import lightning as L
import pytest

from imgcls.data.digits import DigitsDataModule
from imgcls.models.classifier import ImageClassifier
from imgcls.training.run import class_weights, train


@pytest.mark.e2e
def test_early_stopping_tests_the_best_checkpoint(config_factory):
    cfg = config_factory(
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=1",
        "trainer.max_epochs=40",
        "optimizer=sgd",
        "optimizer.lr=0.1",
        "logger=none",
    )
    train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["epochs_trained"] < 39, "early stopping should have ended the run"
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert summary["best_epoch"] < summary["epochs_trained"]  # the last epoch (1-based) was not the best

    # The recorded test figures are those of the best checkpoint, evaluated afresh.
    best = ImageClassifier.load_from_checkpoint(summary["best_checkpoint"])
    data = DigitsDataModule(batch_size=64)
    data.setup("test")
    (result,) = L.Trainer(logger=False, enable_progress_bar=False).test(best, datamodule=data)
    assert result["test/acc"] == pytest.approx(summary["test"]["test/acc"])


@pytest.mark.e2e
def test_checkpoint_alone_rebuilds_the_model(config_factory):
    cfg = config_factory("model=mlp", "trainer.max_epochs=1", "logger=none", "test=false")
    train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    model = ImageClassifier.load_from_checkpoint(summary["best_checkpoint"])
    assert model.class_names == [str(d) for d in range(10)]
    assert list(model.hparams.input_shape) == [1, 8, 8]


def test_balanced_class_weights_follow_sklearn():
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    counts = [50, 10, 5]
    labels = np.repeat([0, 1, 2], counts)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert class_weights("balanced", counts) == pytest.approx(expected.tolist())
    assert class_weights(None, counts) is None
    with pytest.raises(ValueError, match="3 classes"):
        class_weights([1.0, 2.0], counts)
