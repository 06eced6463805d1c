"""Sweep summaries: a row per job, winner first, failed and crashed jobs listed with their error."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from conftest import run_train_py
from digits_run import trained_digits_run
from omegaconf import OmegaConf

from imgcls.reports.sweep_summary import summarize_sweep, write_sweep_summary


def fake_job(sweep, run_dir, name: str, overrides: list[str], lr: float, model: str, **record):
    """A job directory made of a real run's files, with its overrides and recorded results changed."""
    job = sweep / name
    shutil.copytree(run_dir, job, ignore=shutil.ignore_patterns("checkpoints", "report", "tensorboard"))
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    config = OmegaConf.load(job / ".hydra" / "config.yaml")
    config.optimizer.lr, config.model.name = lr, model
    OmegaConf.save(config, job / ".hydra" / "config.yaml")
    if record.pop("missing", False):
        (job / "metrics.json").unlink()
    else:
        metrics = json.loads((job / "metrics.json").read_text())
        if record.get("status") == "failed":
            metrics = {"status": "failed", "wall_time_s": 1.0}
        metrics.update(record)
        if "val_acc" in record:
            metrics["best"]["val/acc"] = metrics.pop("val_acc")
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    run_dir = trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run")
    sweep = tmp_path_factory.mktemp("sweep")
    common = ["data=digits", "trainer.max_epochs=5"]  # the same in every job: not a column
    fake_job(sweep, run_dir, "000_a", [*common, "model=cnn", "optimizer.lr=0.001"], 1e-3, "cnn", val_acc=0.80)
    fake_job(sweep, run_dir, "001_b", [*common, "model=cnn", "optimizer.lr=0.01"], 1e-2, "cnn", val_acc=0.95)
    fake_job(sweep, run_dir, "002_c", [*common, "model=mlp", "optimizer.lr=0.001"], 1e-3, "mlp", val_acc=0.90)
    fake_job(
        sweep, run_dir, "003_d", [*common, "model=mlp", "optimizer.lr=-1"], -1, "mlp",
        status="failed", error="ValueError: Invalid learning rate: -1",
    )  # fmt: skip
    fake_job(sweep, run_dir, "004_e", [*common, "model=mlp", "optimizer.lr=0.01"], 1e-2, "mlp", missing=True)
    (sweep / "multirun.yaml").write_text("not a job\n")
    return sweep


@pytest.mark.e2e  # the sweep's jobs are copies of the shared digits run, trained once
def test_summary_sorts_marks_the_winner_and_keeps_failed_jobs(sweep):
    table = summarize_sweep(sweep)
    assert list(table["job"]) == ["001_b", "002_c", "000_a", "003_d", "004_e"]
    assert list(table["winner"]) == ["★", "", "", "", ""]
    assert list(table["status"]) == ["ok", "ok", "ok", "failed", "missing"]
    assert table.loc[3, "error"] == "ValueError: Invalid learning rate: -1"
    assert "no metrics.json" in table.loc[4, "error"]
    # Only the overrides that vary are columns.
    assert (
        "model" in table
        and "optimizer.lr" in table
        and "data" not in table
        and "trainer.max_epochs" not in table
    )
    assert list(table["val/acc"][:3]) == [0.95, 0.90, 0.80]

    record = json.loads((sweep / "000_a" / "metrics.json").read_text())
    winner = table.iloc[0]
    assert winner["test/acc"] == record["test"]["test/acc"]
    assert winner["best_epoch"] == record["best_epoch"]
    assert winner["params_trainable"] == record["params"]["trainable"]
    assert winner["best_checkpoint"] == record["best_checkpoint"]


@pytest.mark.e2e  # the sweep's jobs are copies of the shared digits run, trained once
def test_summary_command_writes_tables_and_plots(sweep, capsys):
    from imgcls.reports.sweep_summary import main

    main([str(sweep)])  # python -m imgcls.reports.sweep_summary <sweep dir>
    assert str(sweep / "sweep_summary.md") in capsys.readouterr().out
    for name in ("sweep_summary.csv", "sweep_summary.md", "metric_vs_lr.png", "val_curves.png"):
        assert (sweep / name).stat().st_size > 0
    assert len(pd.read_csv(sweep / "sweep_summary.csv")) == 5
    markdown = (sweep / "sweep_summary.md").read_text()
    assert (
        "★" in markdown
        and "Invalid learning rate" in markdown
        and "![val_curves](val_curves.png)" in markdown
    )


@pytest.mark.e2e  # the sweep's jobs are copies of the shared digits run, trained once
def test_metric_vs_lr_has_a_line_per_model(sweep):
    from imgcls.reports.sweep_summary import plot_metric_vs_lr

    figure = plot_metric_vs_lr(sweep, "val/acc")
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert lines == {"cnn": ([1e-3, 1e-2], [0.80, 0.95]), "mlp": ([1e-3], [0.90])}


@pytest.mark.slow
def test_real_lr_sweep_with_a_failing_run(tmp_path):
    """A real 4-run sweep (2 models x 2 learning rates), then a run whose learning rate the
    optimizer rejects, both into one sweep directory."""
    sweep = tmp_path / "sweep"
    tiny = ["debug=limit", "report=false", f"hydra.sweep.dir={sweep}"]
    run_train_py("-m", "model=logreg,mlp", "optimizer.lr=0.001,0.01", *tiny, log_dir=tmp_path)
    failed = run_train_py("-m", "model=mlp", "optimizer.lr=-1", *tiny, log_dir=tmp_path, check=False)
    assert failed.returncode != 0
    paths = write_sweep_summary(sweep)
    table = pd.read_csv(paths["csv"])
    assert len(table) == 5
    assert (table["status"] == "ok").sum() == 4 and table["winner"].eq("★").sum() == 1
    failed_row = table[table["status"] == "failed"].iloc[0]
    assert "optimizer.lr=-1 must be > 0" in failed_row["error"] and failed_row.name == 4  # failed rows last
    assert paths["metric_vs_lr"].is_file() and paths["val_curves"].is_file()
