"""Confusion matrices that read at many classes: the figures show the most confused classes,
the CSV keeps every class; the confused pairs are shown with example images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from imgcls.metrics import Predictions
from imgcls.reports.confusion_matrix import (
    ConfusionMatrixFigure,
    confused_pair_indices,
    most_confused_classes,
    plot_confused_pair_examples,
    plot_confusion_matrix,
)
from imgcls.reports.figures import plt

CLASSES = 100
PER_CLASS = 4
# (true, predicted, how many of the true class's samples): the only mistakes.
MISTAKES = [(17, 83, 3), (83, 17, 2), (5, 61, 2), (42, 5, 1), (99, 0, 1)]


def many_class_predictions() -> Predictions:
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    predicted = labels.copy()
    for true, read_as, count in MISTAKES:
        predicted[np.flatnonzero(labels == true)[:count]] = read_as
    probabilities = np.full((len(labels), CLASSES), 0.1 / (CLASSES - 1))
    probabilities[np.arange(len(labels)), predicted] = 0.9
    images = torch.from_numpy(np.repeat(labels.astype(np.uint8)[:, None, None, None], 6, axis=2).repeat(6, axis=3))
    names = [f"class_{i:03d}" for i in range(CLASSES)]
    return Predictions("test", probabilities, labels, names, image_source=images)


def _matrix(predictions: Predictions) -> np.ndarray:
    k = len(predictions.class_names)
    return np.bincount(predictions.labels * k + predictions.predicted, minlength=k * k).reshape(k, k)


def _tick_labels(figure) -> tuple[list[str], list[str]]:
    ax = figure.axes[0]
    return [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]


def test_most_confused_classes_rank_by_mistakes_made_and_received():
    matrix = _matrix(many_class_predictions())
    # 17 and 83: 5 mistakes each; 5: 2 made + 1 received; 61: 2; 0, 42, 99: 1 (by index)
    assert list(most_confused_classes(matrix, 7)) == [17, 83, 5, 61, 0, 42, 99]
    assert confused_pair_indices(matrix, 3) == [(17, 83), (5, 61), (83, 17)]  # 83→17: 2, share 0.5 = 5→61


def test_figures_above_the_limit_show_the_most_confused_classes():
    predictions = many_class_predictions()
    names, matrix = predictions.class_names, _matrix(predictions)
    for normalize in (False, True):
        figure = plot_confusion_matrix(matrix, names, normalize=normalize, max_classes=5)
        x_labels, y_labels = _tick_labels(figure)
        assert x_labels == y_labels == [names[i] for i in (17, 83, 5, 61, 0)]
        assert "the 5 most confused of 100 classes" in figure.axes[0].get_title()
        shown = figure.axes[0].images[0].get_array()
        assert shown.shape == (5, 5) and shown[0, 1] == (0.75 if normalize else 3)  # 17 → 83
        plt.close(figure)
    small = plot_confusion_matrix(matrix[:10, :10], names[:10], max_classes=30)  # under the limit: all
    assert len(_tick_labels(small)[0]) == 10
    plt.close(small)


@pytest.mark.e2e
def test_report_keeps_the_full_matrix_in_the_csv_and_shows_pairs_with_images(tmp_path, monkeypatch):
    import imgcls.reports.report as report

    predictions = many_class_predictions()
    drawn = []
    monkeypatch.setattr(report, "plot_confusion_matrix", lambda *a, **kw: drawn.append(kw) or plt.figure())
    text = report.write_report([predictions], tmp_path, confusion_classes=30, confused_pair_examples=3).read_text()
    assert [kw["max_classes"] for kw in drawn] == [30, 30]
    csv = pd.read_csv(tmp_path / "test" / "confusion_matrix.csv", index_col=0)
    assert csv.shape == (CLASSES, CLASSES) and list(csv.columns) == predictions.class_names
    assert csv.loc["class_017", "class_083"] == 3 and int(csv.to_numpy().sum()) == CLASSES * PER_CLASS
    assert "(test/confused_pairs.png)" in text and (tmp_path / "test" / "confused_pairs.png").stat().st_size


def test_pair_figure_shows_true_example_misread_image_and_read_as_example():
    predictions = many_class_predictions()
    figure = plot_confused_pair_examples(predictions, [(17, 83), (99, 0)])
    titles = [ax.get_title() for ax in figure.axes]
    # class 17 is rows 68-71 (68-70 read as 83), class 83 rows 332-335 (332-333 read as 17)
    assert titles == [
        "#71 class_017 (example)", "#68 class_017 → class_083 (0.90)", "#334 class_083 (example)",
        "#397 class_099 (example)", "#396 class_099 → class_000 (0.90)", "#0 class_000 (example)",
    ]
    # every shown image is of the class its caption names (the synthetic images hold their label)
    for ax, title in zip(figure.axes, titles, strict=True):
        if ax.images:
            row = int(title.split()[0][1:])
            assert ax.images[0].get_array()[0, 0] == predictions.labels[row]
    plt.close(figure)


def test_tensorboard_figures_take_the_same_limit(config_factory):
    from hydra.utils import instantiate

    callback = instantiate(config_factory("confusion_classes=12").callbacks.confusion_matrix)
    assert callback.max_classes == 12


def _pixels(figure) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def test_a_figure_drawn_again_shows_what_a_new_figure_shows():
    """TensorBoard's figure of each epoch is one figure drawn again: after earlier matrices
    (other counts, colours, scale and, above max_classes, other classes) it must show exactly
    the picture a figure made for the last matrix alone shows."""
    rng = np.random.default_rng(0)
    names = [f"class {i}" for i in range(12)]
    earlier = [rng.integers(0, 5, (12, 12)), np.diag(np.full(12, 900)) + rng.integers(0, 40, (12, 12))]
    last = rng.integers(0, 300, (12, 12))
    for max_classes in (None, 6):
        figure = ConfusionMatrixFigure(names, max_classes=max_classes)
        for matrix in earlier:
            figure.draw(matrix, title="val (step 1)")
        drawn_again = _pixels(figure.draw(last, title="val (step 2)"))
        new = _pixels(plot_confusion_matrix(last, names, title="val (step 2)", max_classes=max_classes))
        assert drawn_again.shape == new.shape
        assert np.array_equal(drawn_again, new)
