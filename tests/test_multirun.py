"""A learning-rate multirun: four named runs whose TensorBoard events hold curves, confusion matrices and HPARAMS."""

import json

import pytest
from conftest import run_train_py
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

LRS = ["0.1", "0.01", "0.001", "0.0001"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("outputs")
    run_train_py(
        "-m",
        f"optimizer.lr={','.join(LRS)}",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=5",
        "report=false",  # the report is tested elsewhere; this test reads the event files
        log_dir=log_dir,
    )
    (sweep_dir,) = (log_dir / "train" / "multiruns").iterdir()
    return sweep_dir


@pytest.mark.e2e
def test_four_runs_with_readable_names(sweep):
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "metrics.json").exists())
    # Named by number (sorts right) and by what the sweep varies; the overrides every job
    # shares (data, epochs, logging interval) are not repeated in each name.
    expected = [f"{i:03d}_optimizer.lr-{lr}" for i, lr in enumerate(LRS)]
    assert [job.name for job in jobs] == expected
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "ok"
        assert (job / ".hydra" / "config.yaml").is_file()


@pytest.mark.e2e
def test_event_files_hold_curves_confusion_matrices_and_hparams(sweep):
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        events = EventAccumulator(
            str(job / "tensorboard"), size_guidance={"images": 0, "scalars": 0}
        ).Reload()
        scalars = set(events.Tags()["scalars"])
        assert {
            "train/loss_step",
            "train/loss_epoch",
            "train/acc",
            "val/loss",
            "val/acc",
            "test/acc",
        } <= scalars
        assert len(events.Scalars("val/acc")) == 2  # one point per epoch
        assert {"val/confusion_matrix", "test/confusion_matrix"} <= set(events.Tags()["images"])
        assert len(events.Images("val/confusion_matrix")) == 2

        plugin = events.PluginTagToContent("hparams")
        info = plugin_data_pb2.HParamsPluginData.FromString(
            plugin["_hparams_/session_start_info"]
        ).session_start_info
        lr = float(job.name.split("optimizer.lr-")[1].split("+")[0])
        assert info.hparams["optimizer.lr"].number_value == pytest.approx(lr)
        metrics = json.loads((job / "metrics.json").read_text())
        hp_acc = events.Scalars("hp/test_acc")
        assert hp_acc[0].value == pytest.approx(metrics["test"]["test/acc"])
        assert events.Scalars("hp/val_acc")[0].value == pytest.approx(metrics["best"]["val/acc"])
