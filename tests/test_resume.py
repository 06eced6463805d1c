"""Exact resume: a run killed at a random point and resumed ends exactly as an uninterrupted one."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, TEST_OVERRIDES, run_train_py
from omegaconf import OmegaConf

from imgcls.config import ConfigError
from imgcls.training.checkpointing import EXIT_SIGTERM
from imgcls.training.resume import resume_arguments

# Shuffling, per-sample augmentation, dropout and worker processes: everything that draws
# random numbers or could change the data order on a resume.
RUN = (
    "data=digits",
    "model=cnn",
    "model.net.dropout=0.2",
    "data.augment.crop_padding=1",
    "data.augment.rotation=10",
    "data.num_workers=2",
    "data.batch_size=32",
    "trainer.max_epochs=3",
    "trainer.log_every_n_steps=2",
    "seed=7",
    "report=false",  # what these tests compare is the weights and metrics.json
)


def start_train_py(*args: str, log_dir: Path) -> subprocess.Popen:
    """``train.py`` started in the background; its output goes to ``<log_dir>.log``."""
    command = [sys.executable, str(REPO / "train.py"), *args, f"paths.log_dir={log_dir}", *TEST_OVERRIDES]
    output = open(f"{log_dir}.log", "w")  # noqa: SIM115 - the child process keeps it open
    process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, text=True)
    process.log = Path(f"{log_dir}.log")
    return process


def only_run_dir(log_dir: Path) -> Path:
    (run_dir,) = (log_dir / "train" / "runs").iterdir()
    return run_dir


def wait_for(path_glob, process: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(path_glob())
        if found:
            return found[0]
        if process.poll() is not None:
            raise AssertionError(
                f"train.py ended ({process.returncode}) too early:\n{process.log.read_text()[-4000:]}"
            )
        time.sleep(0.05)
    raise AssertionError("timed out")


def final_state(run_dir: Path) -> tuple[dict, dict]:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return checkpoint["state_dict"], metrics


def assert_ends_where(run_dir: Path, reference_dir: Path, keys=("best", "test", "best_epoch", "epochs_trained")):
    """``run_dir`` ended with ``reference_dir``'s weights, bit for bit, and its metrics ``keys``."""
    weights, metrics = final_state(run_dir)
    expected_weights, expected_metrics = final_state(reference_dir)
    assert weights.keys() == expected_weights.keys()
    for name, tensor in expected_weights.items():
        assert torch.equal(weights[name], tensor), name
    for key in keys:
        assert metrics[key] == expected_metrics[key], key


def scalar_events(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar of a run, as TensorBoard reads it (purged events left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_kill_9_at_a_random_point_then_resume_equals_an_uninterrupted_run(tmp_path):
    short = (*RUN, "trainer.limit_train_batches=12")
    reference = start_train_py(*short, log_dir=tmp_path / "reference")
    victim = start_train_py(*short, log_dir=tmp_path / "killed")
    checkpoints = lambda: (tmp_path / "killed").glob("train/runs/*/checkpoints/last.ckpt")  # noqa: E731
    wait_for(checkpoints, victim)
    # Somewhere in the second epoch: mid-step, in validation, or while a checkpoint is written.
    time.sleep(random.uniform(0.0, 2.0))
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert reference.wait(timeout=600) == 0, reference.log.read_text()[-4000:]
    killed_dir = only_run_dir(tmp_path / "killed")
    assert not (killed_dir / "metrics.json").exists(), "the run ended before it was killed"

    run_train_py(f"resume={killed_dir}", log_dir=tmp_path / "killed")

    assert only_run_dir(tmp_path / "killed") == killed_dir, "resume must continue in the same directory"
    assert_ends_where(killed_dir, only_run_dir(tmp_path / "reference"))
    # The same TensorBoard run, with every step once: what the killed process logged from its
    # last checkpoint's step on is purged and logged again by the resumed one. The one exception
    # is the parameter counts, logged at step 0 by every process, with the same values.
    resumed_scalars = scalar_events(killed_dir)
    expected_scalars = scalar_events(only_run_dir(tmp_path / "reference"))
    assert resumed_scalars.keys() == expected_scalars.keys()
    for tag, points in expected_scalars.items():
        resumed = resumed_scalars[tag]
        if tag.startswith("params/"):  # logged again by the resumed process, same value
            resumed = sorted(set(resumed))
        assert resumed == points, tag


@pytest.mark.slow
def test_sigterm_mid_epoch_exits_143_with_a_checkpoint_and_resume_finishes(tmp_path):
    # The signal comes from the run itself after the second epoch's first (fused) batch, so
    # it lands mid-epoch on any machine; it is a real SIGTERM all the same.
    sigterm = "+callbacks.sigterm={_target_:interrupt_helpers.SigtermAtBatch,epoch:1,batch:0}"
    env = {"PYTHONPATH": str(Path(__file__).parent)}
    run = run_train_py(*RUN, sigterm, log_dir=tmp_path, check=False, env=env)
    assert run.returncode == EXIT_SIGTERM, run.stdout[-2000:] + run.stderr[-4000:]
    run_dir = only_run_dir(tmp_path)
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    batches = saved["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"]
    # Epoch-end saves hold no batches of the next epoch: this one is SIGTERM's.
    assert saved["epoch"] == 1 and batches > 0, "SIGTERM saves a checkpoint in the middle of the second epoch"
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "interrupted"

    run_train_py(f"resume={run_dir}", log_dir=tmp_path, env=env)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["epochs_trained"] == 3
    # The resumed epoch trains on the batches the interrupted one had left: it ends where an
    # uninterrupted run does.
    run_train_py(*RUN, log_dir=tmp_path / "reference")
    assert_ends_where(run_dir, only_run_dir(tmp_path / "reference"), keys=("test",))

    again = run_train_py(f"resume={run_dir}", log_dir=tmp_path, env=env)
    assert "already finished" in again.stdout


def test_resume_replays_the_runs_own_overrides_in_its_directory(tmp_path):
    run_dir = tmp_path / "2026-01-01_00-00-00-000000-1_model=mlp,trainer.max_epochs=3"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        "- model=mlp\n- trainer.max_epochs=3\n- ckpt_path=old\n"
    )

    arguments = resume_arguments([f"resume={run_dir}", "trainer.max_epochs=5"])

    quoted = f"'{run_dir}'"
    assert arguments == [
        "model=mlp",
        "trainer.max_epochs=3",
        "trainer.max_epochs=5",
        f"hydra.run.dir={quoted}",
        "hydra.output_subdir=.hydra/resume-1",  # the run's own .hydra/ stays as it was
        f"resume={quoted}",
        "ckpt_path=last",
    ]
    assert resume_arguments(["model=mlp"]) == ["model=mlp"]
    with pytest.raises(SystemExit, match="not a run directory"):
        resume_arguments([f"resume={tmp_path / 'nothing'}"])


def test_resume_refuses_what_it_cannot_change_naming_it(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- model=mlp\n- seed=7\n")
    changes = ["trainer.max_epochs=9", "optimizer.lr=0.5", "logger=csv", "data.num_workers=2", "seed=7"]
    resume_arguments([f"resume={run_dir}", *changes])  # applied (seed=7 is the run's own)

    for refused in ("model=cnn", "model.net.hidden=8", "seed=3", "data.batch_size=8", "optimizer=sgd",
                    "scheduler=cosine", "+callbacks.stop={_target_:x.Y}", "experiment=digits_cnn"):  # fmt: skip
        with pytest.raises(ConfigError, match=f"cannot change {re.escape(refused)}:"):
            resume_arguments([f"resume={run_dir}", "trainer.max_epochs=9", refused])
    assert list((run_dir / ".hydra").iterdir()) == [run_dir / ".hydra" / "overrides.yaml"]


def test_a_new_learning_rate_scales_a_restored_warm_up_and_cosine_schedule():
    from imgcls.training.optimization import build_scheduler, rescale_learning_rates

    schedule = {"factory": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "_partial_": True,
                            "T_max": None, "eta_min": 0.0}, "interval": "epoch", "warmup": 2}  # fmt: skip

    def run(lr: float):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
        return optimizer, build_scheduler(schedule, optimizer, 10, "val/acc")["scheduler"]

    def steps(optimizer, scheduler, n):
        rates = []
        for _ in range(n):
            optimizer.step()
            scheduler.step()
            rates.append(optimizer.param_groups[0]["lr"])
        return rates

    restored, expected = run(0.1), run(0.5)
    steps(*restored, 1), steps(*expected, 1)  # resumed in the warm-up
    rescale_learning_rates(restored[0], [restored[1]], 5.0)
    assert steps(*restored, 8) == pytest.approx(steps(*expected, 8), rel=1e-9)


@pytest.mark.e2e
def test_same_seed_gives_identical_metrics(tmp_path):
    from conftest import compose_config

    from imgcls.training.run import train

    overrides = ("model=cnn", "model.net.dropout=0.2", "data.augment.crop_padding=1", "debug=limit", "seed=3", "report=false")
    results = []
    for attempt in range(2):
        cfg = compose_config(*overrides, output_dir=tmp_path / str(attempt))
        train(cfg)
        results.append(json.loads((tmp_path / str(attempt) / "metrics.json").read_text()))
    assert results[0]["best"] == results[1]["best"]
    assert results[0]["test"] == results[1]["test"]


if os.name != "posix":  # pragma: no cover - signals and fork are POSIX
    pytest.skip("POSIX only", allow_module_level=True)


@pytest.mark.e2e
def test_resume_keeps_the_csv_history_and_a_failed_resume_changes_no_log(tmp_path):
    import pandas as pd

    run_train_py("model=logreg", "trainer.max_epochs=2", "report=false", log_dir=tmp_path)
    run_dir = only_run_dir(tmp_path)
    record = run_dir / "metrics.json"
    # As if the process had been killed after its epoch-2 checkpoint.
    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "interrupted"}))
    history = run_dir / "csv" / "metrics.csv"
    before = history.read_bytes()

    # A bad value fails the resume after Hydra wrote its config.
    failed = run_train_py(f"resume={run_dir}", "data.num_workers=abc", log_dir=tmp_path, check=False)
    assert failed.returncode != 0
    assert history.read_bytes() == before

    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "num_workers" not in overrides  # the failed resume's own overrides are kept beside them
    assert "data.num_workers=abc" in (run_dir / ".hydra" / "resume-1" / "overrides.yaml").read_text()

    run_train_py(f"resume={run_dir}", "trainer.max_epochs=4", "report=false", log_dir=tmp_path)
    epochs = pd.read_csv(history).dropna(subset=["val/acc"])
    assert epochs["epoch"].tolist() == [0, 1, 2, 3]  # the first two epochs are still there
    assert epochs["step"].is_monotonic_increasing


def mark_interrupted(run_dir: Path) -> None:
    """As if the run had been killed after its last checkpoint."""
    record = run_dir / "metrics.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "status": "interrupted"}))


@pytest.mark.e2e
def test_a_resume_applies_the_changes_it_accepts_and_the_next_resume_keeps_them(tmp_path):
    run_train_py("model=logreg", "trainer.max_epochs=1", "report=false", "logger=csv", log_dir=tmp_path)
    run_dir = only_run_dir(tmp_path)
    own_overrides = (run_dir / ".hydra" / "overrides.yaml").read_bytes()
    mark_interrupted(run_dir)

    refused = run_train_py(f"resume={run_dir}", "trainer.max_epochs=2", "model=mlp", "seed=3", log_dir=tmp_path, check=False)
    assert refused.returncode == 1 and "cannot change model=mlp, seed=3:" in refused.stderr
    assert not list((run_dir / ".hydra").glob("resume-*")), "refused before anything is written"

    resumed = run_train_py(f"resume={run_dir}", "trainer.max_epochs=2", "optimizer.lr=0.5", log_dir=tmp_path)
    assert "optimizer.lr 0.001 -> 0.5" in resumed.stdout
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 1  # trained the second epoch (0-based) ...
    assert [group["lr"] for group in saved["optimizer_states"][0]["param_groups"]] == [0.5]  # ... at 0.5
    assert (run_dir / ".hydra" / "overrides.yaml").read_bytes() == own_overrides

    # A plain resume continues with the settings its checkpoint was trained with.
    mark_interrupted(run_dir)
    run_train_py(f"resume={run_dir}", log_dir=tmp_path)
    config = OmegaConf.load(run_dir / ".hydra" / "resume-2" / "config.yaml")
    assert (config.optimizer.lr, config.trainer.max_epochs, config.model.name) == (0.5, 2, "logreg")
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_20_kill_9_during_checkpoint_saves_lose_nothing_and_resume_exactly(tmp_path):
    # Each checkpoint holds ~4.4M weights and Adam's two moments (~52 MB): written and fsynced,
    # a save takes about a second here, so the kills land in saves as often as not.
    run = ("data=digits", "model=mlp", "model.net.hidden_sizes=[2048,2048]", "trainer.max_epochs=30", "trainer.limit_train_batches=3",
           "trainer.limit_val_batches=2", "report=false", "logger=csv", "seed=5")  # fmt: skip
    reference = start_train_py(*run, log_dir=tmp_path / "reference")
    victim = start_train_py(*run, log_dir=tmp_path / "killed")
    wait_for(lambda: (tmp_path / "killed").glob("train/runs/*/checkpoints/last.ckpt"), victim)
    run_dir = only_run_dir(tmp_path / "killed")
    checkpoints = run_dir / "checkpoints"
    killed_in_a_save = 0
    for kill in range(20):
        if kill:
            victim = start_train_py(f"resume={run_dir}", log_dir=tmp_path / "killed")
        try:  # until this process starts writing a checkpoint
            wait_for(lambda: checkpoints.glob(f".*.{victim.pid}.*.tmp"), victim)  # noqa: B023
        except AssertionError:
            assert victim.returncode == 0, victim.log.read_text()[-4000:]
            break  # it finished: nothing left to kill
        time.sleep(random.uniform(0.0, 1.0))
        killed_in_a_save += any(checkpoints.glob(f".*.{victim.pid}.*.tmp"))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert reference.wait(timeout=600) == 0, reference.log.read_text()[-4000:]
    assert killed_in_a_save >= 3, f"only {killed_in_a_save} kills landed in a save"

    run_train_py(f"resume={run_dir}", log_dir=tmp_path / "killed")

    assert not [p.name for p in checkpoints.iterdir() if p.name.endswith(".tmp")], "a killed save's file is left"
    assert_ends_where(run_dir, only_run_dir(tmp_path / "reference"))


def test_the_numbered_checkpoint_restores_the_best_model_tracking_lightnings_wrote(tmp_path):
    # Lightning files a callback's state under its state_key; the best-checkpoint callback
    # was Lightning's ModelCheckpoint before imgcls numbered epochs from 1.
    from lightning.pytorch.callbacks import ModelCheckpoint

    from imgcls.training.checkpointing import NumberedCheckpoint

    settings = {"dirpath": tmp_path, "monitor": "val/acc", "mode": "max", "save_top_k": 1}
    numbered = NumberedCheckpoint(filename="epoch{epoch_number:03d}", **settings)
    assert numbered.state_key == ModelCheckpoint(filename="epoch{epoch:03d}", **settings).state_key
    assert numbered.state_key != ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None).state_key
