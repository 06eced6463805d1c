"""TensorBoard's HPARAMS tab leads with what tells runs apart, and holds what the run derived."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
from conftest import compose_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from imgcls.config import SWEPT_KEYS_ENV
from imgcls.reports.tensorboard import hparams_from_config, log_final_hparams
from imgcls.training.run import _shown, computed_hparams

FIRST = ["1 model.name", "2 optimizer, lr", "3 data.batch_size", "4 trainer.max_epochs", "5 data"]


def _as_tensorboard_shows(log_dir) -> tuple[list[str], dict]:
    """The HPARAMS tab's columns in TensorBoard's order (by name: its backend's
    _sort_and_reduce_to_hparams_limit; nothing differs in one run), and the run's values."""
    plugin = EventAccumulator(str(log_dir)).Reload().PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/experiment"]).experiment
    start = plugin_data_pb2.HParamsPluginData.FromString(plugin["_hparams_/session_start_info"]).session_start_info
    values = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
              for name, value in start.hparams.items()}
    return sorted(info.name for info in experiment.hparam_infos), values


def test_hparams_lead_with_model_optimizer_lr_batch_size_epochs_and_data():
    params = hparams_from_config(compose_config("model=cnn", "optimizer=sgd", "optimizer.lr=0.05"))
    assert list(params)[: len(FIRST)] == FIRST
    assert [params[key] for key in FIRST] == ["cnn", "SGD lr 0.05", 64, 20, "DigitsDataModule"]
    assert params["optimizer.lr"] == 0.05  # the number too, to sort and filter runs by
    assert "optimizer.weight_decay" not in params and "seed" not in params  # in resolved.yaml
    swept = hparams_from_config(compose_config("optimizer.weight_decay=0.1"), swept=["optimizer.weight_decay"])
    assert list(swept)[len(FIRST):] == ["optimizer.lr", "optimizer.weight_decay"]
    assert swept["optimizer.weight_decay"] == 0.1


def test_tensorboard_ticks_the_five_leading_columns_first(tmp_path, monkeypatch):
    """TensorBoard shows the first five hparams of its order by default (tf-hparams-query-pane)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(tmp_path, name="", version="")
    cfg = compose_config("model=cnn", "optimizer=sgd", "optimizer.lr=0.05", "optimizer.weight_decay=0.1")
    monkeypatch.setenv(SWEPT_KEYS_ENV, "optimizer.weight_decay")
    log_final_hparams([logger], cfg, {"test/acc": 0.9})
    columns, values = _as_tensorboard_shows(tmp_path)
    assert columns[:5] == FIRST
    assert [values[name] for name in FIRST] == ["cnn", "SGD lr 0.05", 64, 20, "DigitsDataModule"]
    assert {"optimizer.lr", "optimizer.weight_decay"} <= set(columns[5:])


def _differential_run():
    head, backbone = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(
        [{"params": backbone.parameters(), "lr": 1e-4, "name": "backbone"},
         {"params": head.parameters(), "lr": 1e-3, "name": "head"}]
    )
    model = SimpleNamespace(hparams=SimpleNamespace(class_weights=[0.5, 2.0, 1.25]))
    return model, SimpleNamespace(optimizers=[optimizer])


def test_every_learning_rate_of_differential_rates_and_the_class_weights_are_logged(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    computed = computed_hparams(*_differential_run())
    assert computed == {
        "optimizer.lr.backbone": 1e-4,
        "optimizer.lr.head": 1e-3,
        "loss.class_weights.computed": "[0.5, 2.0, 1.25]",
    }
    cfg = compose_config("model=resnet18", "model.backbone_lr_mult=0.1", "loss.class_weights=balanced")
    logger = TensorBoardLogger(tmp_path, name="", version="")
    log_final_hparams([logger], cfg, {"test/acc": 0.9}, computed)
    columns, values = _as_tensorboard_shows(tmp_path)
    assert columns[:5] == FIRST
    assert values["2 optimizer, lr"] == "Adam lr backbone 0.0001, head 0.001"
    assert values["optimizer.lr.backbone"] == 1e-4 and values["optimizer.lr.head"] == 1e-3
    assert "loss.class_weights.computed" in columns


def test_class_weights_are_printed_with_their_class_names(caplog):
    caplog.set_level(logging.INFO, logger="imgcls")
    assert _shown([0.5, 2.0], ["cat", "dog"]) == [0.5, 2.0]
    assert "Class weights of the loss: cat 0.500, dog 2.000" in caplog.text
