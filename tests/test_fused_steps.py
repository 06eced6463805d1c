"""Fused steps (several optimizer steps per Lightning step) change nothing but speed: the
same batches and optimizer steps give the same numbers, step count, schedules and logged
x-axis as one Lightning step per batch; and they are refused where Lightning must step."""

import json
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from conftest import compose_config
from lightning.pytorch.callbacks import Callback

from imgcls.config import ConfigError
from imgcls.training.fused_steps import AUTO_MAX_FUSED_STEPS, backward_for, resolve_fused_steps
from imgcls.training.run import train


def _run(run_dir: Path, *overrides) -> tuple[dict, pd.DataFrame, dict]:
    # Digits has no augmentation, so both runs draw the same batches and dropout masks.
    cfg = compose_config(
        "model=cnn",
        "trainer.max_epochs=3",
        "optimizer.lr=3e-3",
        "logger=csv",
        "trainer.log_every_n_steps=5",
        "report=false",  # these tests compare weights, metrics and logs
        *overrides,
        output_dir=run_dir,
    )
    train(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    checkpoint = torch.load(metrics["last_checkpoint"], map_location="cpu", weights_only=False)
    return metrics, pd.read_csv(run_dir / "csv" / "metrics.csv"), checkpoint


def rows(log: pd.DataFrame, column: str) -> pd.Series:
    """A logged column by its x-axis step."""
    return log.dropna(subset=[column]).set_index("step")[column]


@pytest.mark.e2e
@pytest.mark.parametrize("schedule", ["onecycle", "plateau"])  # per step; per epoch on a metric
def test_fused_steps_train_to_the_same_numbers(tmp_path, schedule):
    extra = [f"scheduler={schedule}"]
    if schedule == "plateau":  # made to cut the rate after every epoch in which val/acc rises
        extra += ["scheduler.factory.patience=0", "scheduler.factory.mode=min"]
    plain, plain_log, plain_ckpt = _run(tmp_path / "plain", "fused_steps=1", *extra)
    fused, fused_log, fused_ckpt = _run(tmp_path / "fused", "fused_steps=4", *extra)

    assert plain["test"]["test/acc"] > 0.6  # it learned (10 classes), so the comparison means something
    for split in ("best", "test"):
        for key, value in plain[split].items():
            assert fused[split][key] == pytest.approx(value, abs=1e-5), (split, key)
    # Same optimizer steps, so the same step count and weights.
    assert fused_ckpt["global_step"] == plain_ckpt["global_step"] == 3 * 19  # 1,168 images, batch 64
    for key, state in plain_ckpt["state_dict"].items():
        assert torch.allclose(fused_ckpt["state_dict"][key].float(), state.float(), atol=1e-5), key

    # The learning rate each epoch trained with. (Lightning steps a plateau schedule after the
    # epoch's checkpoint is saved, fused steps before it: so a resumed run keeps the cut.)
    pd.testing.assert_series_equal(rows(fused_log, "lr-Adam"), rows(plain_log, "lr-Adam"))
    if schedule == "plateau":
        assert rows(plain_log, "lr-Adam").tolist() == pytest.approx([3e-3, 3e-3, 3e-4])  # cut once

    # The loggers' x-axis is optimizer steps in both: epoch-end rows and step losses (every
    # log_every_n_steps-th) at the same steps, with the same values.
    pd.testing.assert_index_equal(rows(fused_log, "val/acc").index, rows(plain_log, "val/acc").index)
    fused_losses, plain_losses = rows(fused_log, "train/loss_step"), rows(plain_log, "train/loss_step")
    assert len(plain_losses) == 57 // 5
    pd.testing.assert_series_equal(fused_losses, plain_losses, atol=1e-5)


def _trainer(**kwargs) -> L.Trainer:
    kwargs.setdefault("enable_checkpointing", False)
    return L.Trainer(accelerator="cpu", logger=False, **kwargs)


class _PerBatch(Callback):
    def on_train_batch_end(self, *args):
        pass


def test_auto_groups_steps_unless_a_setting_counts_batches():
    from lightning.pytorch.callbacks import EMAWeightAveraging, LearningRateMonitor, ModelCheckpoint

    cifar_batch, retina_batch = 128 * 3 * 32 * 32, 32 * 3 * 512 * 512
    assert resolve_fused_steps("auto", _trainer(), cifar_batch) == AUTO_MAX_FUSED_STEPS
    assert resolve_fused_steps("auto", _trainer(), 64 * 3 * 224 * 224) == 3  # 29 MiB a group
    assert resolve_fused_steps("auto", _trainer(), retina_batch) == 1  # long steps: nothing to gain
    assert resolve_fused_steps(3, _trainer()) == 3
    # Clipping, 16-bit precision and fractions of an epoch keep their meaning when grouped.
    for kwargs in ({"gradient_clip_val": 1.0}, {"limit_train_batches": 0.5}, {"val_check_interval": 0.5}):
        assert resolve_fused_steps("auto", _trainer(**kwargs), cifar_batch) == AUTO_MAX_FUSED_STEPS, kwargs
    step_checkpoint = ModelCheckpoint(every_n_train_steps=5)
    for kwargs, key, configs in [
        ({"accumulate_grad_batches": 2}, "accumulate_grad_batches", None),
        ({"strategy": "ddp", "devices": 2}, "devices", None),
        ({"fast_dev_run": True}, "fast_dev_run", None),
        ({"limit_train_batches": 40}, "limit_train_batches=40", None),
        ({"val_check_interval": 10}, "val_check_interval=10", None),
        ({"overfit_batches": 4}, "overfit_batches=4", None),
        ({"callbacks": [EMAWeightAveraging()]}, "EMAWeightAveraging", None),
        ({"callbacks": [LearningRateMonitor(logging_interval="step")]}, "logging_interval=step", None),
        ({"callbacks": [step_checkpoint], "enable_checkpointing": True}, "every_n_train_steps=5", {id(step_checkpoint): {"every_n_train_steps": 5}}),
        ({"callbacks": [_PerBatch()]}, "_PerBatch", None),
    ]:
        trainer = _trainer(**kwargs)
        assert resolve_fused_steps("auto", trainer, cifar_batch, configs) == 1, kwargs
        assert resolve_fused_steps(1, trainer, callback_configs=configs) == 1
        with pytest.raises(ConfigError, match=key):
            resolve_fused_steps(4, trainer, callback_configs=configs)
    with pytest.raises(ConfigError, match="fused_steps"):
        resolve_fused_steps(0, _trainer())


@pytest.mark.e2e
def test_ema_from_the_command_line_averages_after_every_optimizer_step(tmp_path):
    ema = ["+callbacks.ema._target_=lightning.pytorch.callbacks.EMAWeightAveraging", "+callbacks.ema.decay=0.9"]
    cfg = compose_config("model=logreg", "trainer.max_epochs=2", "test=false", *ema, output_dir=tmp_path / "ema")
    train(cfg)
    metrics = json.loads((tmp_path / "ema" / "metrics.json").read_text())
    assert metrics["resolved"]["fused_steps"] == 1  # auto: the callback counts batches
    checkpoint = torch.load(metrics["last_checkpoint"], map_location="cpu", weights_only=False)
    batches = 2 * 19  # 1,168 training images, batch 64
    assert checkpoint["global_step"] == batches
    assert int(checkpoint["averaging_state"]["n_averaged"]) == batches  # one update per step
    refused = compose_config("model=logreg", "fused_steps=4", *ema, output_dir=tmp_path / "refused")
    with pytest.raises(ConfigError, match="EMAWeightAveraging"):
        train(refused)


@pytest.mark.e2e
def test_grouped_steps_clip_gradients_like_lightning(tmp_path):
    clip = ["trainer.gradient_clip_val=0.05", "optimizer=sgd", "optimizer.lr=0.5"]
    plain, _, plain_ckpt = _run(tmp_path / "plain", "fused_steps=1", *clip)
    grouped, _, grouped_ckpt = _run(tmp_path / "grouped", "fused_steps=4", *clip)
    unclipped, _, unclipped_ckpt = _run(tmp_path / "unclipped", "fused_steps=4", *clip[1:])
    for key, state in plain_ckpt["state_dict"].items():
        assert torch.allclose(grouped_ckpt["state_dict"][key].float(), state.float(), atol=1e-5), key
    # ... and the clipping matters at this learning rate: without it the weights differ.
    assert any(
        not torch.allclose(unclipped_ckpt["state_dict"][key].float(), state.float(), atol=1e-3)
        for key, state in plain_ckpt["state_dict"].items()
    )
    assert grouped["resolved"]["fused_steps"] == 4


@pytest.mark.e2e
def test_per_step_hooks_run_for_every_grouped_step(tmp_path):
    class CountSteps(Callback):
        def __init__(self):
            self.backward = self.optimizer_steps = 0

        def on_after_backward(self, trainer, pl_module):
            self.backward += 1

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.optimizer_steps += 1

    counter = CountSteps()
    cfg = compose_config("model=logreg", "trainer.max_epochs=1", "fused_steps=4", "test=false", output_dir=tmp_path)
    train(cfg, extra_callbacks=[counter])
    assert counter.backward == counter.optimizer_steps == 19


def test_steps_skip_manual_backward_only_where_it_would_do_nothing_more():
    """Grouped steps call ``loss.backward()`` directly only where ``manual_backward`` would
    add nothing: no gradient scaler, no backward hook of a callback or the module, no profiler."""

    class BackwardHook(Callback):
        def on_after_backward(self, trainer, pl_module):
            pass

    class ModuleHook(L.LightningModule):
        def on_before_backward(self, loss):
            pass

    def chosen(trainer, module=None):
        module = module or L.LightningModule()
        module.trainer = trainer
        return backward_for(module)

    assert chosen(_trainer()) is torch.Tensor.backward
    assert chosen(_trainer(callbacks=[_PerBatch()])) is torch.Tensor.backward
    for trainer, module in [
        (_trainer(callbacks=[BackwardHook()]), None),
        (_trainer(), ModuleHook()),
        (_trainer(profiler="simple"), None),
        (_trainer(precision="bf16-mixed"), None),
    ]:
        backward = chosen(trainer, module)
        assert backward.__func__ is L.LightningModule.manual_backward, (trainer, module)


def test_the_one_private_lightning_access_still_exists():
    """Grouped steps advance the loggers' step count (training/fused_steps.py); a Lightning
    release that renames it must fail here, not shift every logged x-axis silently."""
    trainer = _trainer()
    assert isinstance(trainer.fit_loop.epoch_loop._batches_that_stepped, int)


@pytest.mark.e2e
def test_fused_steps_stop_at_max_steps(tmp_path):
    cfg = compose_config(
        "model=logreg", "trainer.max_steps=6", "fused_steps=4", "test=false", output_dir=tmp_path
    )
    train(cfg)
    last = json.loads((tmp_path / "metrics.json").read_text())["last_checkpoint"]
    # Not 8: the group stops at max_steps, as Lightning's own steps do.
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 6


@pytest.mark.e2e
def test_grouped_steps_augment_like_plain_steps(tmp_path):
    """Each step's batch is augmented as the step takes it, so random crops and flips draw
    the same numbers in the same order as one Lightning step per batch."""
    common = ("data=photo_crops", "data.train_size=1024", "data.val_size=128", "data.test_size=128", "report=false")
    _, _, plain = _run(tmp_path / "plain", "fused_steps=1", *common)
    _, _, grouped = _run(tmp_path / "grouped", "fused_steps=4", *common)
    assert grouped["global_step"] == plain["global_step"] == 3 * 1024 // 128
    for key, state in plain["state_dict"].items():
        assert torch.allclose(grouped["state_dict"][key].float(), state.float(), atol=1e-5), key
