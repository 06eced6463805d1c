"""Temperature scaling: fitted on the validation set, stored in the best checkpoint, used by
the test pass, predict.py and evaluate.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from digits_run import best_checkpoint, trained_digits_run
from PIL import Image

from imgcls.metrics import Predictions
from imgcls.reports.calibration import calibration_bins
from imgcls.training.temperature import at_temperature, fit_temperature


def overconfident_predictions(scale: float = 6.0, n: int = 3000, k: int = 10) -> Predictions:
    """A model about 70% right whose logits are ``scale`` times too large."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.6
    logits *= scale
    probabilities = torch.from_numpy(logits).softmax(1).numpy()
    return Predictions("val", probabilities, labels, [str(i) for i in range(k)], logits=logits)


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model():
    val = overconfident_predictions()
    temperature = fit_temperature(torch.from_numpy(val.logits), torch.from_numpy(val.labels))
    assert temperature > 2  # the logits are scaled down, by most of the 6x over-scaling
    before, after = calibration_bins(val).ece, calibration_bins(at_temperature(val, temperature)).ece
    assert before > 0.2 and after < 0.05
    calibrated = at_temperature(val, temperature)
    assert (calibrated.predicted == val.predicted).all()  # the same classes, other probabilities
    assert calibrated.uncalibrated().probabilities == pytest.approx(val.probabilities)


@pytest.mark.e2e
def test_the_report_shows_the_test_ece_the_run_computed_and_computes_none(tmp_path, monkeypatch):
    import imgcls.reports.calibration as calibration_module
    from imgcls.reports.calibration import split_calibration
    from imgcls.reports.report import write_report

    test = at_temperature(overconfident_predictions(n=300), 3.0)
    test.split = "test"
    computed = split_calibration(test)

    def recomputed(*args, **kwargs):
        raise AssertionError("the report computed the ECE again")

    monkeypatch.setattr(calibration_module, "calibration_bins", recomputed)
    report = write_report([test], tmp_path, calibration={"test": computed}, gallery_size=0, confused_pair_examples=0)
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())["test"]
    assert evaluation["ece"] == computed.eces()["ece"]
    assert evaluation["ece_uncalibrated"] == computed.eces()["ece_uncalibrated"] > evaluation["ece"]
    assert f"took the ECE from {evaluation['ece_uncalibrated']:.4f} to {evaluation['ece']:.4f}" in report.read_text()


def test_an_empty_validation_set_leaves_the_temperature_at_one():
    assert fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) == 1.0


# --- a real run ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run")


@pytest.mark.e2e
def test_the_run_stores_its_temperature_and_reports_the_ece_before_and_after(run_dir):
    summary = json.loads((run_dir / "metrics.json").read_text())
    calibration = summary["calibration"]
    temperature = calibration["temperature"]
    assert temperature != 1.0
    # The fit lowers what it minimizes; the ECE drop is shown on an over-confident model above
    # (this run's model is nearly calibrated already: its ECE may move either way by noise).
    assert calibration["val_nll"] < calibration["val_nll_uncalibrated"]
    assert {"test_ece", "test_ece_uncalibrated"} <= set(calibration)
    # In the best checkpoint's weights, read as weights and plain data only.
    checkpoint = torch.load(best_checkpoint(run_dir), map_location="cpu", weights_only=True)
    assert float(checkpoint["state_dict"]["temperature"]) == pytest.approx(temperature, rel=1e-6)

    report = (run_dir / "report" / "report.md").read_text()
    assert "test/reliability_diagram_uncalibrated.png" in report and "temperature scaling" in report
    evaluation = json.loads((run_dir / "report" / "evaluation.json").read_text())["test"]
    # One computation, shown in both: the same numbers, not merely close ones.
    assert evaluation["ece"] == calibration["test_ece"]
    assert evaluation["ece_uncalibrated"] == calibration["test_ece_uncalibrated"]


@pytest.mark.e2e
def test_predict_uses_the_checkpoints_temperature_unless_told_not_to(run_dir, tmp_path):
    from sklearn.datasets import load_digits

    from imgcls.inference.loading import load_classifier, load_inference_model
    from imgcls.inference.predict import list_inputs, predict_files

    ckpt = best_checkpoint(run_dir)
    temperature = json.loads((run_dir / "metrics.json").read_text())["calibration"]["temperature"]
    images = np.rint(load_digits().images[:6] * (255 / 16)).astype(np.uint8)
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    with torch.no_grad():
        logits = load_classifier(ckpt)(torch.from_numpy(images[:, None]).float() / 255)

    for calibrated, expected_t in ((True, temperature), (False, 1.0)):
        model = load_inference_model(str(ckpt), calibrated=calibrated)
        assert model.temperature == pytest.approx(expected_t, rel=1e-6)
        table = predict_files(model, list_inputs(tmp_path), topk=1)
        expected = (logits / expected_t).softmax(1).max(1).values.numpy()
        assert table["prob_1"].to_numpy() == pytest.approx(expected, abs=1e-5)


@pytest.mark.e2e
def test_a_checkpoint_from_before_temperature_scaling_loads_uncalibrated(run_dir, tmp_path):
    from imgcls.models.classifier import ImageClassifier

    checkpoint = torch.load(best_checkpoint(run_dir), map_location="cpu", weights_only=True)
    del checkpoint["state_dict"]["temperature"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    assert float(ImageClassifier.from_checkpoint(tmp_path / "old.ckpt").temperature) == 1.0


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["min", "max"])  # max: the best epoch is an early one, not the last
def test_calibration_fits_on_the_best_checkpoints_own_validation_pass(tmp_path, mode):
    """The validation predictions training kept for the best checkpoint are the ones a second
    pass with that checkpoint makes: same samples, same logits, so the same temperature."""
    from conftest import compose_config

    from imgcls.training.best_val_predictions import BestValidationPredictions
    from imgcls.training.run import compose
    from imgcls.training.split_predictions import predict_split

    cfg = compose_config("model=cnn", "trainer.max_epochs=4", "monitor=loss", f"monitor.mode={mode}", output_dir=tmp_path)
    datamodule, model, trainer, history, _ = compose(cfg)
    trainer.fit(model, datamodule=datamodule)
    best = trainer.checkpoint_callback.best_model_path
    best_epoch = torch.load(best, map_location="cpu", weights_only=True)["epoch"]
    assert (best_epoch < 3) == (mode == "max")  # 0-based: max picks an epoch before the last
    kept = next(c for c in trainer.callbacks if isinstance(c, BestValidationPredictions)).of(best)
    again = predict_split(trainer, model, datamodule, "val", ckpt_path=best)
    assert kept is not None and len(kept.labels) == len(datamodule.split("val"))
    np.testing.assert_array_equal(kept.indices, again.indices)
    np.testing.assert_array_equal(kept.labels, again.labels)
    np.testing.assert_allclose(kept.logits, again.logits, rtol=0, atol=1e-5)
    logits = [torch.from_numpy(p.logits) for p in (kept, again)]
    labels = torch.from_numpy(kept.labels)
    assert fit_temperature(logits[0], labels) == pytest.approx(fit_temperature(logits[1], labels), rel=1e-5)
