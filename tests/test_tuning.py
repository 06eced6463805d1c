"""lr_find= and batch_size_find=: Lightning's Tuner before training (training/tuning.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from imgcls.config import ConfigError
from imgcls.run_record import RESOLVED_FILE
from imgcls.training import tuning
from imgcls.training.run import compose, train

# A tiny real run: 16 lr steps on the digits (the suggestion skips the first 10 and the last).
FEW_STEPS = ("lr_finder.num_training=16", "lr_finder.early_stop_threshold=null", "report=false")


def _record(cfg) -> dict:
    return json.loads((Path(cfg.paths.output_dir) / "metrics.json").read_text())


@pytest.mark.e2e
def test_lr_find_true_saves_plot_and_suggestion_and_does_not_train(config_factory):
    cfg = config_factory("lr_find=true", "logger=tensorboard", *FEW_STEPS)
    assert train(cfg) is None
    run_dir = Path(cfg.paths.output_dir)
    found = json.loads((run_dir / tuning.LR_FIND_FILE).read_text())
    assert len(found["lr"]) == len(found["loss"]) == 16 and found["num_training"] == 16
    assert found["min_lr"] <= found["suggestion"] <= found["max_lr"]
    assert (run_dir / tuning.LR_FIND_PLOT).stat().st_size > 1000
    assert list(run_dir.rglob("events.out.tfevents.*"))  # the TensorBoard figure
    record = _record(cfg)
    assert record["trained"] is False and record["tuner"]["lr_find"]["suggestion"] == found["suggestion"]
    assert not list((run_dir / "checkpoints").glob("*.ckpt")) if (run_dir / "checkpoints").exists() else True
    assert not list(run_dir.glob(".lr_find_*.ckpt"))  # the Tuner's own temporary checkpoint is gone


@pytest.mark.e2e
def test_lr_find_apply_trains_with_the_suggestion(config_factory):
    import torch

    cfg = config_factory("lr_find=apply", "logger=none", "trainer.max_epochs=1", *FEW_STEPS)
    train(cfg)
    record = _record(cfg)
    suggestion = record["tuner"]["lr_find"]["suggestion"]
    assert record["status"] == "ok" and suggestion != cfg.optimizer.lr or suggestion is not None
    assert record["resolved"]["optimizer.lr"] == suggestion
    assert OmegaConf.load(Path(cfg.paths.output_dir) / RESOLVED_FILE)["optimizer.lr"] == suggestion
    checkpoint = torch.load(record["best_checkpoint"], weights_only=True)
    assert checkpoint["hyper_parameters"]["optimizer"]["lr"] == suggestion
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(suggestion)
    assert record["epochs_trained"] == 1  # the finder's steps are not counted as training


@pytest.mark.parametrize(
    "overrides",
    [
        ("lr_find=true", "trainer.devices=2"),
        ("lr_find=apply", "trainer.strategy=ddp"),
        ("batch_size_find=true", "trainer.num_nodes=2"),
        ("lr_find=true", "trainer=ddp"),
    ],
)
def test_tuning_refuses_ddp_before_training(config_factory, overrides):
    with pytest.raises(ConfigError, match=r"(lr_find|batch_size_find)=.*one device only.*trainer\.devices"):
        tuning.check_tuning_config(config_factory(*overrides))


@pytest.mark.parametrize("overrides", [("lr_find=maybe",), ("batch_size_find=2",), ("lr_find=0",)])
def test_bad_values_name_the_key_and_the_choices(config_factory, overrides):
    key = overrides[0].split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}=.* must be one of false, true .*apply"):
        tuning.check_tuning_config(config_factory(*overrides))


def test_batch_size_find_is_refused_on_cpu(config_factory):
    cfg = config_factory("batch_size_find=true", "trainer.accelerator=cpu")
    _, _, trainer, _, _ = compose(cfg)
    with pytest.raises(ConfigError, match="batch_size_find=true searches the largest batch that fits in GPU memory"):
        tuning.check_tuning_trainer(cfg, trainer)


def test_finders_give_grouped_steps_way(config_factory):
    _, _, _, _, resolved = compose(config_factory("lr_find=true", "fused_steps=auto"))
    assert resolved["fused_steps"] == 1
    with pytest.raises(ConfigError, match="lr_find=true"):
        compose(config_factory("lr_find=true", "fused_steps=4"))


@pytest.mark.e2e
def test_the_batch_size_finder_itself_runs_and_records(config_factory, tmp_path):
    """The finder's own path (a GPU's job), exercised on the CPU with two tiny trials."""
    from lightning.pytorch.tuner import Tuner

    cfg = config_factory("batch_size_find=apply", "trainer.accelerator=cpu", "logger=none")
    datamodule, model, trainer, _, _ = compose(cfg)  # check_tuning_trainer would refuse the CPU
    found = tuning.find_batch_size(
        Tuner(trainer), model, datamodule, {"mode": "power", "steps_per_trial": 1, "init_val": 4, "max_trials": 2}, tmp_path
    )
    assert found["batch_size"] == datamodule.batch_size >= 4
    assert json.loads((tmp_path / tuning.BATCH_SIZE_FIND_FILE).read_text())["batch_size"] == found["batch_size"]
