"""One small real digits training run, shared by every test module that needs a trained checkpoint."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from omegaconf import OmegaConf


@functools.cache
def trained_digits_run(root: Path) -> Path:
    """Train seed 004's CNN on the real digits for a few epochs (with its automatic report)
    into ``root``; return the run directory. Cached: the session trains once."""
    from conftest import compose_config

    from imgcls.training.run import train

    cfg = compose_config("model=cnn", "trainer.max_epochs=5", "optimizer.lr=3e-3", output_dir=root)
    # What @hydra.main saves for a command-line run, so tools can find the run's data config.
    (root / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, root / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(["model=cnn", "optimizer.lr=3e-3"]), root / ".hydra" / "overrides.yaml")
    train(cfg)
    assert json.loads((root / "metrics.json").read_text())["status"] == "ok"
    return root


def best_checkpoint(run_dir: Path) -> Path:
    return Path(json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"])
