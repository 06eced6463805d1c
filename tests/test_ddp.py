"""DDP on CPU (gloo): every validation and test sample counts once, so metrics match one process."""

from __future__ import annotations

import json

import lightning as L
import pytest
from conftest import run_train_py
from hydra.utils import instantiate

from imgcls.models.classifier import ImageClassifier


@pytest.mark.slow
def test_ddp_on_two_processes_reports_the_test_metrics_of_a_single_process(tmp_path):
    run_train_py(
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "model=cnn",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=6",
        "logger=csv",
        log_dir=tmp_path,
    )
    (run_dir,) = (tmp_path / "train" / "runs").iterdir()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "ok"
    assert record["test_samples"] == {"test": 360}  # every test image once, across both processes

    from conftest import compose_config

    datamodule = instantiate(compose_config("model=cnn").data)
    model = ImageClassifier.load_from_checkpoint(record["best_checkpoint"])
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    (single,) = trainer.test(model, datamodule=datamodule)

    assert set(record["test"]) == set(single)
    for key, value in single.items():
        assert record["test"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.e2e
def test_ddp_in_a_local_sweep_is_refused_with_the_alternatives(tmp_path):
    result = run_train_py(
        "-m",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "model=logreg",
        "debug=fast",
        "seed=1",
        log_dir=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "Lightning #11300" in result.stderr and "hydra/launcher=slurm" in result.stderr
