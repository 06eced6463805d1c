"""The trustworthy core: one evaluation pass whose numbers every output shares, the saved
config says what ran, every Trainer argument is a config value, light modules stay light."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import lightning as L
import pytest
from conftest import CONF_DIR, REPO, compose_config
from omegaconf import OmegaConf

from imgcls.training.run import train


@pytest.fixture(scope="module")
def limited_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("limited") / "run"
    cfg = compose_config(
        "model=logreg", "trainer.max_epochs=2", "trainer.limit_test_batches=2", "data.eval_batch_size=50",
        output_dir=run_dir,
    )
    train(cfg)
    return run_dir


@pytest.mark.e2e
def test_metrics_json_and_the_report_show_the_same_test_numbers_under_a_limit(limited_run):
    record = json.loads((limited_run / "metrics.json").read_text())
    report = json.loads((limited_run / "report" / "evaluation.json").read_text())["test"]
    assert record["test_samples"] == {"test": 100}  # 2 batches of 50 of the 360 test images
    assert report["samples"] == 100 and report["evaluated_of"] == 360
    for key, value in record["test"].items():
        assert report[key.removeprefix("test/")] == value, key  # to the last digit
    assert record["test"]["test/top5"] >= record["test"]["test/acc"]
    text = (limited_run / "report" / "report.md").read_text()
    assert "Evaluated on 100 of its 360 images" in text


@pytest.mark.e2e
def test_a_limited_evaluation_scores_a_shuffled_sample_of_every_class(limited_run):
    from imgcls.data.digits import DigitsDataModule
    from imgcls.data.evaluation_order import EvaluationOrder

    data = DigitsDataModule()
    data.setup("test")
    labels = data.test_sets["test"].labels[list(EvaluationOrder(360))[:100]]
    assert len(set(labels.tolist())) == 10


@pytest.mark.e2e
def test_the_run_directory_records_what_auto_resolved_to(limited_run):
    resolved = OmegaConf.load(limited_run / "resolved.yaml")
    assert resolved.precision == "32-true" or resolved.precision.startswith("bf16")
    assert resolved.fused_steps >= 1 and resolved.channels_last is False  # logreg has no convolutions
    assert json.loads((limited_run / "metrics.json").read_text())["resolved"] == OmegaConf.to_container(resolved)


def test_every_lightning_trainer_argument_is_a_config_value():
    configured = set(OmegaConf.load(CONF_DIR / "trainer" / "default.yaml")) - {"_target_"}
    arguments = set(inspect.signature(L.Trainer.__init__).parameters) - {"self", "callbacks", "logger"}
    assert arguments - configured == set(), "add them to conf/trainer/default.yaml"
    assert configured - arguments == set()
    cfg = compose_config("trainer.gradient_clip_val=1.0", "trainer.max_steps=5", "trainer.benchmark=true")
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.trainer.max_steps == 5


@pytest.mark.parametrize("debug", [p.stem for p in sorted((CONF_DIR / "debug").glob("*.yaml"))])
def test_debug_configs_run_the_real_path(debug):
    # No switch of their own: auto resolves grouped steps as for any run that counts batches.
    assert "fused_steps" not in OmegaConf.load(CONF_DIR / "debug" / f"{debug}.yaml")
    assert compose_config(f"debug={debug}").fused_steps == "auto"


@pytest.mark.e2e
def test_debug_limit_resolves_to_one_step_per_batch(tmp_path):
    train(compose_config("debug=limit", "model=logreg", "report=false", output_dir=tmp_path))
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["resolved"]["fused_steps"] == 1  # limit_train_batches=4 counts batches
    checkpoint = record["last_checkpoint"]
    import torch

    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"] == 2 * 4


def test_the_sweep_summary_imports_neither_torch_nor_lightning():
    code = (
        "import sys, imgcls.reports.sweep_summary, imgcls.run_record\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'torchvision'))\n"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.e2e
def test_no_import_cycle_between_training_reports_and_inference():
    code = (
        "import importlib, pkgutil, imgcls\n"
        "for m in pkgutil.walk_packages(imgcls.__path__, 'imgcls.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    # Imported first and alone, a module in a cycle fails as partially initialized.
    for package in ("imgcls.training.sweep", "imgcls.reports.sweep_summary"):
        subprocess.run([sys.executable, "-c", f"import {package}"], check=True, cwd=REPO)
    subprocess.run([sys.executable, "-c", "import imgcls.training.run\n" + code], check=True, cwd=REPO)
