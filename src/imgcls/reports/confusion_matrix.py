"""Confusion-matrix figures, readable at 10 classes and at thousands: above ``max_classes`` a
figure shows the sub-matrix of the most confused classes (the full matrix stays in the CSV)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from imgcls.display import display_names
from imgcls.reports.figures import plt

# Above this many classes the cells are too small for numbers to be read.
MAX_ANNOTATED_CLASSES = 30
_MARGINS = ("left", "right", "bottom", "top", "wspace", "hspace")


def most_confused_classes(matrix, count: int) -> np.ndarray:
    """The ``count`` classes with the most mistakes, as true or as predicted class, most first
    (ties: the lower index first)."""
    mistakes = np.asarray(matrix, dtype=np.int64).copy()
    np.fill_diagonal(mistakes, 0)
    involvement = mistakes.sum(axis=0) + mistakes.sum(axis=1)
    return np.argsort(-involvement, kind="stable")[:count]


def plot_confusion_matrix(
    matrix,
    class_names: list[str],
    normalize: bool = False,
    title: str | None = None,
    max_classes: int | None = None,
):
    """Rows are true classes, columns predicted; ``normalize`` divides each row by its total.

    With more than ``max_classes`` classes only the ``max_classes`` most confused are drawn
    (rows normalized over all their samples first), most confused first."""
    return ConfusionMatrixFigure(class_names, normalize, max_classes).draw(matrix, title)


class ConfusionMatrixFigure:
    """A confusion-matrix figure that is drawn again for each new matrix (TensorBoard's figure
    of every validation epoch, :func:`plot_confusion_matrix` once). Its axes, ticks and cell
    texts are made once per set of shown classes; a new matrix only changes the cells' colours
    and numbers and the title: a redraw takes half the time of a new figure (0.13 against
    0.25 s at 10 classes here), most of it the cell texts."""

    def __init__(self, class_names: list[str], normalize: bool = False, max_classes: int | None = None):
        self.class_names, self.normalize, self.max_classes = list(class_names), normalize, max_classes
        self.figure = None
        self._shown: list[int] | None = None

    def draw(self, matrix, title: str | None = None):
        """The figure, showing ``matrix`` (counts, rows true classes) under ``title``."""
        counts = np.asarray(matrix, dtype=np.float64)
        values = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None) if self.normalize else counts
        title = title or ("Confusion matrix (row-normalized)" if self.normalize else "Confusion matrix")
        shown = list(range(len(self.class_names)))
        if self.max_classes and len(self.class_names) > self.max_classes:
            # The raw and the normalized figure show the same classes.
            shown = [int(i) for i in most_confused_classes(counts, self.max_classes)]
            title += (
                f"\n(the {self.max_classes} most confused of {len(self.class_names)} classes; "
                "all in confusion_matrix.csv)"
            )
            values = values[np.ix_(shown, shown)]
        if shown != self._shown:
            self._make(shown)
        self._image.set_data(values)
        self._image.set_clim(0, 1 if self.normalize else max(values.max(initial=0), 1))
        threshold = values.max() / 2 if values.size else 0
        for text, value in zip(self._cells, values.flat, strict=False):
            text.set_text(f"{value:.2f}" if self.normalize else f"{int(value)}")
            text.set_color("white" if value > threshold else "black")
        self._axes.set_title(title)
        # From the default margins each time, as a new figure: tight_layout adjusts the current
        # ones, so a figure drawn again would drift. The cell texts lie inside the axes, out of it.
        self.figure.subplots_adjust(**{side: plt.rcParams[f"figure.subplot.{side}"] for side in _MARGINS})
        self.figure.tight_layout()
        return self.figure

    def _make(self, shown: list[int]) -> None:
        names = display_names([self.class_names[i] for i in shown])
        n = len(names)
        size = min(4 + 0.45 * n, 40)
        # Not pyplot's: a figure kept from epoch to epoch must not count among its open figures.
        self.figure = Figure(figsize=(size, size * 0.85))
        ax = self._axes = self.figure.add_subplot()
        self._image = ax.imshow(np.zeros((n, n)), cmap="Blues", vmin=0, vmax=1)
        self.figure.colorbar(self._image, ax=ax, fraction=0.046, pad=0.04)
        ax.set(xticks=range(n), yticks=range(n), xlabel="Predicted class", ylabel="True class")
        tick_size = 9 if n <= MAX_ANNOTATED_CLASSES else 6
        ax.set_xticklabels(
            names, rotation=90 if n > 10 else 45, ha="right" if n <= 10 else "center", fontsize=tick_size
        )
        ax.set_yticklabels(names, fontsize=tick_size)
        self._cells = []
        if n <= MAX_ANNOTATED_CLASSES:
            for row, col in np.ndindex(n, n):
                text = ax.text(col, row, "", ha="center", va="center", fontsize=7 if n > 15 else 9)
                text.set_in_layout(False)
                self._cells.append(text)
        self._shown = shown


def confused_pair_indices(matrix, top_n: int = 20) -> list[tuple[int, int]]:
    """``(true, predicted)`` class indices of the ``top_n`` most frequent mistakes, the most
    frequent first (ties: the larger share of the true class, then row-major order)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    mistakes = matrix.copy()
    np.fill_diagonal(mistakes, 0)
    rows, cols = np.nonzero(mistakes)
    share = mistakes[rows, cols] / np.maximum(matrix.sum(axis=1)[rows], 1)
    order = np.lexsort((-share, -mistakes[rows, cols]))[:top_n]
    return [(int(rows[i]), int(cols[i])) for i in order]


def confused_pairs(matrix, class_names: list[str], top_n: int = 20):
    """The ``top_n`` most frequent (true, predicted) mistakes, as a table.

    ``share_of_true`` is the fraction of the true class's samples that went to ``predicted``.
    """
    import pandas as pd

    matrix = np.asarray(matrix, dtype=np.int64)
    class_names = display_names(class_names)
    pairs = confused_pair_indices(matrix, top_n)
    totals = matrix.sum(axis=1)
    return pd.DataFrame(
        {
            "true": [class_names[t] for t, _ in pairs],
            "predicted": [class_names[p] for _, p in pairs],
            "count": [int(matrix[t, p]) for t, p in pairs],
            "share_of_true": [matrix[t, p] / max(totals[t], 1) for t, p in pairs],
        },
        columns=["true", "predicted", "count", "share_of_true"],
    )


def plot_confused_pair_examples(predictions, pairs: list[tuple[int, int]], title: str | None = None):
    """One row per confused pair: an example of the true class (its most confident correct
    prediction), the misread image (the pair's most confident mistake) and an example of the
    class it was read as, so the pair's likeness can be seen. A note when there are no images."""
    if not predictions.has_images or not pairs:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no images" if pairs else "no mistakes", ha="center", va="center")
        return fig
    names, labels, predicted = display_names(predictions.class_names), predictions.labels, predictions.predicted
    order = np.argsort(-predictions.confidence, kind="stable")  # each pick: the most confident row

    def first(mask):
        rows = order[mask[order]]
        return int(rows[0]) if len(rows) else None

    fig, axes = plt.subplots(len(pairs), 3, figsize=(7.5, 2.5 * len(pairs)), squeeze=False)
    for (true, read_as), row_axes in zip(pairs, axes, strict=True):
        misread = first((labels == true) & (predicted == read_as))
        picks = [
            (first((labels == true) & (predicted == true)), f"{names[true]} (example)"),
            (misread, f"{names[true]} → {names[read_as]} ({predictions.confidence[misread]:.2f})"),
            (first((labels == read_as) & (predicted == read_as)), f"{names[read_as]} (example)"),
        ]
        for ax, (row, caption) in zip(row_axes, picks, strict=True):
            ax.axis("off")
            if row is None:
                ax.text(0.5, 0.5, "no correctly\nread example", ha="center", va="center", fontsize=9)
                continue
            image = predictions.image(row)
            if image.shape[0] == 1:
                ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
            else:
                ax.imshow(image[:3].transpose(1, 2, 0))
            ax.set_title(f"#{predictions.indices[row]} {caption}", fontsize=9)
    fig.suptitle(title or "Most confused pairs: true class, misread image, class read as")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the title above row 1
    return fig
