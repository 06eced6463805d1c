"""Sweeps survive their jobs: failed jobs are recorded, the rest run, the end reports them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, TEST_OVERRIDES, run_train_py

# End-to-end runs: the default suite runs them, `make test-unit` skips them.
pytestmark = pytest.mark.e2e

# Tiny jobs: 2 epochs of a few batches.
TINY = ("model=cnn", "debug=limit", "test=false", "logger=csv")


def sweep_jobs(log_dir):
    (sweep_dir,) = (log_dir / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())
    return sweep_dir, {job.name: json.loads((job / "metrics.json").read_text()) for job in jobs}


def test_grid_sweep_runs_every_job_when_one_raises_system_exit(tmp_path):
    helpers = "sweep_helpers.SystemExitingDigits"
    result = run_train_py(
        "-m",
        *TINY,
        f"data._target_=imgcls.data.digits.DigitsDataModule,{helpers}",
        "seed=1,2",
        log_dir=tmp_path,
        check=False,
        env={"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])},
    )
    sweep_dir, jobs = sweep_jobs(tmp_path)
    assert len(jobs) == 4, result.stderr[-3000:]
    statuses = sorted(record["status"] for record in jobs.values())
    assert statuses == ["failed", "failed", "ok", "ok"]
    assert all("this job called sys.exit()" in r["error"] for r in jobs.values() if r["status"] == "failed")
    # The sweep itself fails at the end, naming each failed job and its error.
    assert result.returncode != 0
    assert "2 of 4 sweep jobs failed" in result.stderr
    assert result.stderr.count("SystemExit: this job called sys.exit()") >= 2


@pytest.mark.parametrize(
    ("signal_name", "exit_code"),
    # The same path for both signals: Ctrl-C's in the slow tier keeps the default suite short.
    [("SIGTERM", 143), pytest.param("SIGINT", 130, marks=pytest.mark.slow)],
)
def test_a_signal_ends_the_whole_sweep_after_the_jobs_checkpoint(tmp_path, signal_name, exit_code):
    import pandas as pd

    signal_at = f"+callbacks.signal={{_target_:interrupt_helpers.SigtermAtBatch,epoch:0,batch:1,signal_name:{signal_name}}}"
    result = run_train_py(
        "-m", *TINY, "seed=1,2,3", signal_at, log_dir=tmp_path, check=False,
        env={"PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert result.returncode == exit_code, result.stderr[-3000:]
    sweep_dir, jobs = sweep_jobs(tmp_path)
    assert [record["status"] for record in jobs.values()] == ["interrupted"], "no job starts after the signal"
    (job,) = jobs
    assert (sweep_dir / job / "checkpoints" / "last.ckpt").is_file()
    summary = pd.read_csv(sweep_dir / "sweep_summary.csv", dtype=str)
    assert summary[["seed", "status"]].values.tolist() == [["1", "interrupted"], ["2", "not run"], ["3", "not run"]]
    assert "2 jobs did not run" in (sweep_dir / "sweep_summary.md").read_text()


@pytest.mark.slow  # 8 s; a failing job's record and the sweep going on are also the grid test's
def test_optuna_search_records_a_diverged_trial_as_failed_and_goes_on(tmp_path):
    result = run_train_py(
        "-m",
        f"hydra.searchpath=[file://{REPO / 'tests' / 'configs'}]",
        "hparams_search=grid_with_a_diverging_trial",
        *TINY,
        log_dir=tmp_path,
        check=False,
    )
    sweep_dir, jobs = sweep_jobs(tmp_path)
    assert len(jobs) == 4, result.stderr[-3000:]
    failed = [r for r in jobs.values() if r["status"] == "failed"]
    assert len(failed) == 1 and "FloatingPointError" in failed[0]["error"]
    assert all(
        r["status"] == "ok" and 0 <= r["best"]["val/acc"] <= 1 for r in jobs.values() if r not in failed
    )
    # Optuna completed the search over the three trials that trained.
    results = (sweep_dir / "optimization_results.yaml").read_text()
    assert "best_value" in results
    assert result.returncode != 0 and "1 of 4 sweep jobs failed" in result.stderr


@pytest.mark.slow  # 6 s: two train.py processes
def test_two_runs_started_at_the_same_instant_get_two_directories(tmp_path):
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "data=digits",
        "train=false",
        "test=false",
        f"paths.log_dir={tmp_path}",
    ]
    processes = [subprocess.Popen([*command, *TEST_OVERRIDES], cwd=REPO) for _ in range(2)]
    assert [p.wait(timeout=300) for p in processes] == [0, 0]
    run_dirs = list((tmp_path / "train" / "runs").iterdir())
    assert len(run_dirs) == 2
    assert all((run_dir / "metrics.json").is_file() for run_dir in run_dirs)


@pytest.mark.parametrize("mode, direction", [("max", "maximize"), ("min", "minimize")])
def test_the_search_direction_follows_the_monitored_metric(mode, direction):
    from hydra import compose, initialize_config_dir

    from imgcls.config import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hparams_search=optuna_random", f"monitor.mode={mode}"],
            return_hydra_config=True,
        )
    assert cfg.hydra.sweeper.direction == direction
