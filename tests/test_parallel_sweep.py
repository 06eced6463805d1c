"""hydra/launcher=parallel: a sweep's jobs run side by side, one per GPU, into one sweep directory."""

from __future__ import annotations

import fcntl
import json
import os

import pandas as pd
import pytest
from conftest import run_train_py

from imgcls.config import ConfigError
from imgcls.training import device_slots

TINY = ("model=cnn", "debug=limit", "test=false", "logger=csv", "trainer.max_epochs=1")


@pytest.fixture
def fresh_worker(monkeypatch):
    """This process as a worker that has not taken a GPU yet."""
    monkeypatch.setattr(device_slots, "_slot", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield
    if device_slots._slot is not None:
        device_slots._slot[0].close()


def hold(tmp_path, gpu: str):
    """Another worker's lock on ``gpu`` (flock locks belong to each open file, even in one process)."""
    (tmp_path / device_slots.LOCK_DIR).mkdir(exist_ok=True)
    lock = open(tmp_path / device_slots.LOCK_DIR / f"gpu{gpu}.lock", "w")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return lock


def test_a_worker_takes_a_free_gpu_and_keeps_it(tmp_path, fresh_worker):
    other = hold(tmp_path, "0")
    assert device_slots.take_device(tmp_path, ["0", "1"]) == "1"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    other.close()  # GPU 0 is free again, but this worker's next job stays on its own GPU
    assert device_slots.take_device(tmp_path, ["0", "1"]) == "1"


def test_more_workers_than_gpus_is_a_config_error(tmp_path, fresh_worker):
    other = hold(tmp_path, "0")
    with pytest.raises(ConfigError, match="hydra.launcher.n_jobs to at most 1"):
        device_slots.take_device(tmp_path, ["0"])
    other.close()


def test_the_sweep_stamp_is_fixed_once_and_inherited(monkeypatch):
    from imgcls.config import SWEEP_STAMP_ENV, sweep_stamp

    monkeypatch.delenv(SWEEP_STAMP_ENV, raising=False)
    first = sweep_stamp()
    assert first.endswith(f"-{os.getpid()}") and os.environ[SWEEP_STAMP_ENV] == first
    assert sweep_stamp() == first  # later resolutions (and child processes) get the same name


def sweep(log_dir, *launcher):
    result = run_train_py("-m", *TINY, "optimizer.lr=0.1,0.01", *launcher, log_dir=log_dir, env={"OMP_NUM_THREADS": "1"})
    (sweep_dir,) = (log_dir / "train" / "multiruns").iterdir()
    jobs = sorted(p for p in sweep_dir.iterdir() if (p / "metrics.json").is_file())
    return result, sweep_dir, [json.loads((job / "metrics.json").read_text()) for job in jobs]


@pytest.mark.slow
def test_two_parallel_jobs_overlap_and_summarise_like_a_sequential_sweep(tmp_path):
    _, sequential_dir, sequential = sweep(tmp_path / "sequential")
    result, parallel_dir, parallel = sweep(tmp_path / "parallel", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2")
    assert [r["status"] for r in parallel] == ["ok", "ok"], result.stderr[-3000:]
    (a, b) = ((r["started_at"], r["started_at"] + r["wall_time_s"]) for r in parallel)
    assert a[0] < b[1] and b[0] < a[1], f"the two jobs did not overlap in time: {a}, {b}"
    (x, y) = ((r["started_at"], r["started_at"] + r["wall_time_s"]) for r in sequential)
    assert x[1] <= y[0] or y[1] <= x[0], "the default launcher runs one job at a time"
    seq_table = pd.read_csv(sequential_dir / "sweep_summary.csv")
    par_table = pd.read_csv(parallel_dir / "sweep_summary.csv")
    assert list(par_table.columns) == list(seq_table.columns)
    assert sorted(par_table["job"]) == sorted(seq_table["job"]) == ["000_optimizer.lr-0.1", "001_optimizer.lr-0.01"]
    assert "Sweep summary:" in result.stdout
