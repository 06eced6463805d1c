"""Each baseline net really learns the real handwritten digits in a short run."""

import json
from pathlib import Path

import pytest

from imgcls.training.run import train

# End-to-end runs: the default suite runs them, `make test-unit` skips them.
pytestmark = pytest.mark.e2e

# Test accuracy after a few epochs on 360 held-out digits; chance is 10%.
THRESHOLDS = {"logreg": 0.90, "mlp": 0.90, "cnn": 0.90, "cnn_bn": 0.90}


@pytest.mark.parametrize("model", sorted(THRESHOLDS))
def test_net_learns_digits(config_factory, model):
    cfg = config_factory(f"model={model}", "trainer.max_epochs=6", "optimizer.lr=3e-3", "logger=none", "report=false")
    best_val = train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())
    assert summary["status"] == "ok"
    assert best_val == summary["best"]["val/acc"] > THRESHOLDS[model]
    assert summary["test"]["test/acc"] > THRESHOLDS[model]
    assert Path(summary["best_checkpoint"]).is_file()
    assert Path(summary["last_checkpoint"]).is_file()
