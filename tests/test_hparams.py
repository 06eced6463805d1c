"""TensorBoard's HPARAMS tab leads with what tells runs apart, and holds what the run derived."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
from conftest import compose_config
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from imgcls.reports.tensorboard import hparams_from_config, log_final_hparams
from imgcls.training.run import _shown, computed_hparams

FIRST = ["model.name", "optimizer", "optimizer.lr", "data.batch_size", "trainer.max_epochs", "data"]


def test_hparams_lead_with_model_optimizer_lr_batch_size_epochs_and_data():
    params = hparams_from_config(compose_config("model=cnn", "optimizer=sgd", "optimizer.lr=0.05"))
    assert list(params)[: len(FIRST)] == FIRST
    assert [params[key] for key in FIRST] == ["cnn", "SGD", 0.05, 64, 20, "DigitsDataModule"]
    assert "optimizer.weight_decay" not in params and "seed" not in params  # in resolved.yaml
    swept = hparams_from_config(compose_config("optimizer.weight_decay=0.1"), swept=["optimizer.weight_decay"])
    assert list(swept)[len(FIRST):] == ["optimizer.weight_decay"] and swept["optimizer.weight_decay"] == 0.1


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
    events = EventAccumulator(str(tmp_path)).Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    columns = [info.name for info in plugin_data_pb2.HParamsPluginData.FromString(content).experiment.hparam_infos]
    assert columns[:8] == [*FIRST[:3], "optimizer.lr.backbone", "optimizer.lr.head", *FIRST[3:]]
    assert "loss.class_weights.computed" in columns


def test_class_weights_are_printed_with_their_class_names(caplog):
    caplog.set_level(logging.INFO, logger="imgcls")
    assert _shown([0.5, 2.0], ["cat", "dog"]) == [0.5, 2.0]
    assert "Class weights of the loss: cat 0.500, dog 2.000" in caplog.text
