"""A run reads at a glance: a progress bar only in a terminal, one line per epoch everywhere
(the same in train.log), no control codes in a file, none of Lightning's advertising."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO

from imgcls.config import ConfigError
from imgcls.training.epoch_log import EpochLog, duration
from imgcls.training.model_summary import ModelSummaryLog
from imgcls.training.progress import MonitoredProgressBar, progress_bar_enabled


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_auto_draws_the_bar_only_in_a_terminal(monkeypatch, tty):
    monkeypatch.setattr(sys, "stdout", _Stream(tty))
    assert progress_bar_enabled("auto") is tty
    assert progress_bar_enabled(True) is True and progress_bar_enabled(False) is False


def test_a_progress_bar_setting_that_is_not_auto_or_a_bool_is_refused():
    with pytest.raises(ConfigError, match="trainer.enable_progress_bar='sometimes'"):
        progress_bar_enabled("sometimes")


def test_the_bar_shows_the_monitored_metric():
    trainer = SimpleNamespace(
        loggers=[], progress_bar_metrics={"val/loss": 0.38}, callback_metrics={"val/kappa": torch.tensor(0.7123)}
    )
    items = MonitoredProgressBar("val/kappa").get_metrics(trainer, None)
    assert items == {"val/loss": 0.38, "val/kappa": "0.712"}


def _epoch(log: EpochLog, epoch: int, max_epochs: int, metrics: dict, should_stop=False):
    trainer = SimpleNamespace(
        current_epoch=epoch, max_epochs=max_epochs, should_stop=should_stop,
        callback_metrics={key: torch.tensor(value) for key, value in metrics.items()},
    )
    log.on_train_epoch_start(trainer, None)
    log.on_train_end(trainer, None)


def test_the_epoch_line_has_the_losses_the_monitored_metric_time_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="imgcls")
    log = EpochLog(monitor="val/kappa")
    metrics = {"train/loss_epoch": 0.41, "train/acc": 0.8, "val/loss": 0.38, "val/acc": 0.912, "val/kappa": 0.7}
    _epoch(log, 2, 20, metrics)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("epoch 3/20  train/loss 0.4100  val/loss 0.3800  val/acc 0.9120  val/kappa 0.7000  ")
    assert " s  eta " in line and "train/acc" not in line
    caplog.clear()
    _epoch(log, 19, 20, metrics)  # the last epoch: nothing left to wait for
    assert "eta" not in caplog.records[0].getMessage()


def test_durations_read_as_seconds_minutes_or_hours():
    assert [duration(s) for s in (12.3, 170, 7500)] == ["12 s", "3 min", "2 h 05 min"]


def test_the_model_summary_has_no_flops_column(caplog):
    caplog.set_level(logging.INFO, logger="imgcls")
    data = [(" ", ["0"]), ("Name", ["net"]), ("Type", ["SmallCNN"]), ("Params", ["28.1 K"]), ("Mode", ["train"]),
            ("FLOPs", ["0"])]
    ModelSummaryLog.summarize(data, 28106, 28106, 0.112, {"train": 1, "eval": 0}, total_flops=0)
    text = caplog.records[0].getMessage()
    assert "net" in text and "SmallCNN" in text and "28.1 K" in text
    assert "FLOPs" not in text


@pytest.fixture(scope="module")
def file_run(tmp_path_factory):
    """A run through train.py with its output redirected to files, the progress bar and model
    summary as configured by default (tests usually turn them off), and a lean report."""
    tmp_path = tmp_path_factory.mktemp("file_run")
    command = [
        sys.executable, str(REPO / "train.py"), "data=digits", "model=logreg", "trainer.max_epochs=3",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
        "cam.mistakes=0", "projector.enabled=false", "suspect_labels.enabled=false", f"paths.log_dir={tmp_path}",
    ]
    with open(tmp_path / "stdout.txt", "w") as stdout, open(tmp_path / "stderr.txt", "w") as stderr:
        subprocess.run(command, cwd=REPO, stdout=stdout, stderr=stderr, timeout=300, check=True)
    printed = (tmp_path / "stdout.txt").read_text() + (tmp_path / "stderr.txt").read_text()
    (log,) = tmp_path.rglob("train.log")
    return SimpleNamespace(printed=printed, log=log.read_text(), run_dir=log.parent)


@pytest.mark.e2e
def test_a_run_writing_to_a_file_has_one_line_per_epoch_and_no_control_codes(file_run):
    printed, log = file_run.printed, file_run.log
    for text in (printed, log):
        lines = [line for line in text.splitlines() if "epoch " in line and "/3  train/loss " in line]
        assert [line.split("epoch ")[1][:3] for line in lines] == ["1/3", "2/3", "3/3"]
        assert "val/acc" in lines[-1] and "val/loss" in lines[-1]
        assert "\r" not in text and "\x1b" not in text
        assert "Tip:" not in text and "litlogger" not in text and "FLOPs" not in text
    assert "Model summary:" in log and "Resolved: precision=" in log
    assert "Run directory:" in printed


@pytest.mark.e2e
def test_every_epoch_number_shown_is_the_console_s(file_run):
    """train.log's epoch line with the best val/acc, metrics.json, report.md, the best
    checkpoint's name and the training curves name the same epoch, counted from 1."""
    import json
    import re

    import pandas as pd

    record = json.loads((file_run.run_dir / "metrics.json").read_text())
    assert record["monitor"] == "val/acc"
    logged = [(int(epoch), float(acc)) for epoch, acc in re.findall(r"epoch (\d+)/3 .*val/acc (\S+)", file_run.log)]
    assert [epoch for epoch, _ in logged] == [1, 2, 3]
    best = max(logged, key=lambda pair: pair[1])[0]  # the first of equals, as the run picks
    assert record["best_epoch"] == best
    assert f"{record['best']['val/acc']:.4f}" == f"{dict(logged)[best]:.4f}"
    assert record["best_checkpoint"].endswith(f"epoch{best:03d}.ckpt")
    report = (file_run.run_dir / "report" / "report.md").read_text()
    assert f"Best epoch: {best} of 3, val/acc {dict(logged)[best]:.4f} (`epoch{best:03d}.ckpt`, tested below)." in report
    curves = pd.read_csv(file_run.run_dir / "report" / "training_curves.csv")
    assert list(curves["epoch"]) == [1, 2, 3]
    assert curves.loc[curves["val/acc"].idxmax(), "epoch"] == best
