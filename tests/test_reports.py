"""The evaluation report of a real digits run: every part present, numbers equal sklearn's."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from digits_run import best_checkpoint, trained_digits_run
from sklearn.metrics import classification_report, cohen_kappa_score, confusion_matrix
from torchmetrics.classification import MulticlassCalibrationError

from imgcls.metrics import Predictions, split_metrics
from imgcls.reports.calibration import calibration_bins, plot_confidence_histogram, plot_reliability_diagram
from imgcls.reports.error_gallery import mistake_caption, most_confident_mistakes

# End-to-end runs: the default suite runs them, `make test-unit` skips them.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_digits_run(tmp_path_factory.getbasetemp() / "digits_run")


@pytest.fixture(scope="module")
def predictions(run_dir):
    """The best checkpoint's predictions on the test split, computed independently of the report."""
    from imgcls.data.digits import DigitsDataModule
    from imgcls.inference.loading import load_classifier

    datamodule = DigitsDataModule()
    datamodule.setup("test")
    test = datamodule.test_sets["test"]
    with torch.no_grad():
        probabilities = load_classifier(best_checkpoint(run_dir))(test.images.float() / 255).softmax(1)
    return Predictions(
        "test", probabilities.double().numpy(), test.labels.numpy(), datamodule.class_names, image_source=test.images
    )


SPLIT_FILES = [
    "per_class.csv",
    "per_class.md",
    "averages.csv",
    "averages.md",
    "confusion_matrix.csv",
    "confusion_matrix.png",
    "confusion_matrix_normalized.png",
    "confused_pairs.csv",
    "confused_pairs.md",
    "confused_pairs.png",
    "reliability_diagram.png",
    "confidence_histogram.png",
    "error_gallery.png",
    "predictions.csv",
    "grad_cam.png",
]


def test_training_run_writes_a_report_with_every_part(run_dir):
    report_dir = run_dir / "report"
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["report"] == str(report_dir / "report.md")
    for name in SPLIT_FILES:
        assert (report_dir / "test" / name).stat().st_size > 0, name
    assert (report_dir / "training_curves.png").is_file()

    text = (report_dir / "report.md").read_text()
    linked = set(re.findall(r"\]\(([^)]+)\)", text))
    assert {f"test/{n}" for n in SPLIT_FILES if n.endswith(".png")} | {"training_curves.png"} <= linked
    assert "Per class, worst first" in text and "| macro" in text and "ECE" in text

    # The report's numbers are the run's own test numbers, to the last digit: one test pass.
    metrics = json.loads((report_dir / "evaluation.json").read_text())["test"]
    for key, value in summary["test"].items():
        assert metrics[key.removeprefix("test/")] == value, key
    assert metrics["acc"] > 0.8  # five epochs of the CNN really learn the digits
    assert metrics["top5"] > metrics["acc"]  # some mistakes have the true class among the top 5


def test_predictions_csv_has_every_test_image_and_its_numbers(run_dir):
    summary = json.loads((run_dir / "metrics.json").read_text())
    table = pd.read_csv(run_dir / "report" / "test" / "predictions.csv")
    assert len(table) == summary["test_samples"]["test"]
    # Array data: each row names its image by its position in the test split, once each.
    assert sorted(table["index"]) == list(range(len(table)))
    acc = (table["true_label"] == table["predicted_label"]).mean()
    assert acc == pytest.approx(summary["test"]["test/acc"], abs=1e-12)
    assert table["loss"].mean() == pytest.approx(summary["test"]["test/loss"], rel=1e-9)
    assert (table["label_1"] == table["predicted_label"]).all()
    assert np.allclose(table["prob_1"], table["probability"])
    assert (table[[f"prob_{i}" for i in range(1, 6)]].diff(axis=1).iloc[:, 1:] <= 0).all().all()
    top5 = np.mean([row.true_label in {row.label_1, row.label_2, row.label_3, row.label_4, row.label_5}
                    for row in table.itertuples()])
    assert top5 == pytest.approx(summary["test"]["test/top5"], abs=1e-12)


def test_report_figures_are_in_tensorboard(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = set(events.Tags()["images"])
    for name in ("confusion_matrix", "confusion_matrix_normalized", "reliability_diagram", "error_gallery", "grad_cam"):
        assert f"report/test/{name}" in tags
    assert "report/training_curves" in tags


def test_tables_and_confusion_matrix_equal_sklearn(run_dir, predictions):
    names = predictions.class_names
    expected = classification_report(
        predictions.labels, predictions.predicted, target_names=names, output_dict=True, zero_division=0
    )
    # The tables the training run wrote at its end, from the same (best) checkpoint.
    table_dir = run_dir / "report" / "test"
    per_class = pd.read_csv(table_dir / "per_class.csv", dtype={"class": str}).set_index("class")
    assert sorted(per_class.index) == sorted(names)
    for name in names:
        for column, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert per_class.loc[name, column] == pytest.approx(expected[name][key], abs=1e-6)
        assert per_class.loc[name, "support"] == expected[name]["support"]
    averages = pd.read_csv(table_dir / "averages.csv").set_index("average")
    for average in ("macro", "weighted"):
        for column, key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert averages.loc[average, column] == pytest.approx(expected[f"{average} avg"][key], abs=1e-6)
    matrix = pd.read_csv(table_dir / "confusion_matrix.csv", index_col=0).to_numpy()
    np.testing.assert_array_equal(matrix, confusion_matrix(predictions.labels, predictions.predicted))

    # Worst first: F1 never decreases down the table.
    assert per_class["f1"].is_monotonic_increasing
    pairs = pd.read_csv(table_dir / "confused_pairs.csv", dtype={"true": str, "predicted": str})
    for row in pairs.itertuples():
        assert row.true != row.predicted
        assert matrix[names.index(row.true), names.index(row.predicted)] == row.count
    assert pairs["count"].is_monotonic_decreasing
    off_diagonal = matrix[~np.eye(len(names), dtype=bool)]
    assert pairs["count"].iloc[0] == off_diagonal.max()


def test_calibration_is_computed_from_the_predictions(predictions):
    bins = calibration_bins(predictions, n_bins=15)

    # An independent ECE: a loop over the bins.
    confidence, correct = (
        predictions.probabilities.max(1),
        predictions.probabilities.argmax(1) == predictions.labels,
    )
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:], strict=True):
        inside = (confidence >= lo) & ((confidence < hi) if hi < 1 else (confidence <= hi))
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert bins.ece == pytest.approx(ece, abs=1e-9)
    reference = MulticlassCalibrationError(len(predictions.class_names), n_bins=15, norm="l1")
    expected = reference(
        torch.from_numpy(predictions.probabilities).float(), torch.from_numpy(predictions.labels)
    )
    assert bins.ece == pytest.approx(expected.item(), abs=1e-5)
    assert bins.counts.sum() == len(predictions.labels)

    # The reliability bars are the per-bin accuracies; the count bars the bin sizes.
    figure = plot_reliability_diagram(bins)
    accuracy_axes, count_axes = figure.axes
    heights = [bar.get_height() for bar in accuracy_axes.patches]
    np.testing.assert_allclose(heights, bins.accuracy[bins.counts > 0])
    np.testing.assert_array_equal([bar.get_height() for bar in count_axes.patches], bins.counts)

    histogram = plot_confidence_histogram(predictions)
    counts = [sum(bar.get_height() for bar in container) for container in histogram.axes[0].containers]
    assert counts == [correct.sum(), (~correct).sum()]


def test_error_gallery_shows_the_most_confident_mistakes(predictions):
    picks = most_confident_mistakes(predictions, 16)
    assert len(picks) == min(16, int((~predictions.correct).sum())) > 0
    assert not predictions.correct[picks].any()
    assert np.all(np.diff(predictions.confidence[picks]) <= 0)
    assert predictions.confidence[picks[0]] == predictions.confidence[~predictions.correct].max()
    first = picks[0]
    caption = mistake_caption(predictions, first)
    true, predicted = (
        predictions.class_names[predictions.labels[first]],
        predictions.class_names[predictions.predicted[first]],
    )
    assert caption == f"{true} → {predicted} ({predictions.confidence[first]:.2f})"


def test_quadratic_weighted_kappa_for_ordinal_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 400)
    predicted = np.clip(labels + rng.integers(-1, 2, 400), 0, 4)  # mostly off by at most one grade
    probabilities = np.eye(5)[predicted] * 0.9 + 0.02
    predictions = Predictions("test", probabilities, labels, ["0", "1", "2", "3", "4"])

    # Independent QWK: 1 - sum(W*O) / sum(W*E) with quadratic weights.
    observed = np.zeros((5, 5))
    np.add.at(observed, (labels, predicted), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    weights = (np.subtract.outer(np.arange(5), np.arange(5)) ** 2) / 16
    kappa = 1 - (weights * observed).sum() / (weights * expected).sum()

    metrics = split_metrics(predictions, ordinal=True)
    assert metrics["kappa"] == pytest.approx(kappa, abs=1e-9)
    assert metrics["kappa"] == pytest.approx(cohen_kappa_score(labels, predicted, weights="quadratic"))
    assert "kappa" not in split_metrics(predictions)


def test_training_curves_come_from_the_run_log(run_dir):
    from imgcls.reports.curves import epoch_metrics

    epochs = epoch_metrics(run_dir / "csv" / "metrics.csv")
    assert list(epochs.index) == [1, 2, 3, 4, 5]  # as the console counts
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= set(epochs.columns)
    assert epochs["train/loss"].iloc[-1] < epochs["train/loss"].iloc[0]
    best = json.loads((run_dir / "metrics.json").read_text())
    # The run's recorded best epoch is the curve's best point (val/acc of that same epoch).
    assert epochs["val/acc"].max() == pytest.approx(best["best"]["val/acc"], abs=1e-6)
    assert epochs["val/acc"].idxmax() == best["best_epoch"]


def test_evaluate_rebuilds_the_runs_data_and_writes_the_same_report(run_dir, tmp_path, capsys):
    from conftest import CONF_DIR
    from hydra import compose, initialize_config_dir

    from imgcls.inference.evaluate import evaluate

    ckpt = best_checkpoint(run_dir)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"ckpt_path='{ckpt}'", f"output_dir={tmp_path / 'eval'}"])
    report = evaluate(cfg)
    assert report == tmp_path / "eval" / "report.md"
    ours = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    runs = json.loads((run_dir / "report" / "evaluation.json").read_text())
    assert ours["test"] == pytest.approx(runs["test"], abs=1e-6)
    assert (tmp_path / "eval" / "test" / "error_gallery.png").is_file()
    assert any((tmp_path / "eval" / "tensorboard").iterdir())
    # The headline metrics, as a table: a row per test set.
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| test set"))
    assert [cell.strip() for cell in header.strip("|").split("|")][:3] == ["test set", "images", "acc"]
    assert any(line.startswith("| test ") for line in printed.splitlines())  # the test set's row
