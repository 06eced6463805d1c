"""Confusion-matrix figures."""

from __future__ import annotations

import numpy as np

from imgcls.display import display_names
from imgcls.reports.figures import plt

# Above this many classes the cells are too small for numbers to be read.
MAX_ANNOTATED_CLASSES = 30


def plot_confusion_matrix(matrix, class_names: list[str], normalize: bool = False, title: str | None = None):
    """Rows are true classes, columns predicted; ``normalize`` divides each row by its total."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if normalize:
        matrix = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
    class_names = display_names(class_names)
    n = len(class_names)
    size = min(4 + 0.45 * n, 40)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(
        xticks=range(n),
        yticks=range(n),
        xlabel="Predicted class",
        ylabel="True class",
        title=title or ("Confusion matrix (row-normalized)" if normalize else "Confusion matrix"),
    )
    tick_size = 9 if n <= MAX_ANNOTATED_CLASSES else 6
    ax.set_xticklabels(
        class_names, rotation=90 if n > 10 else 45, ha="right" if n <= 10 else "center", fontsize=tick_size
    )
    ax.set_yticklabels(class_names, fontsize=tick_size)
    if n <= MAX_ANNOTATED_CLASSES:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, col), value in np.ndenumerate(matrix):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            ax.text(
                col,
                row,
                text,
                ha="center",
                va="center",
                fontsize=7 if n > 15 else 9,
                color="white" if value > threshold else "black",
            )
    fig.tight_layout()
    return fig


def confused_pairs(matrix, class_names: list[str], top_n: int = 20):
    """The ``top_n`` most frequent (true, predicted) mistakes, as a table.

    ``share_of_true`` is the fraction of the true class's samples that went to ``predicted``.
    """
    import pandas as pd

    matrix = np.asarray(matrix, dtype=np.int64)
    class_names = display_names(class_names)
    mistakes = matrix.copy()
    np.fill_diagonal(mistakes, 0)
    rows, cols = np.nonzero(mistakes)
    totals = matrix.sum(axis=1)
    table = pd.DataFrame(
        {
            "true": [class_names[r] for r in rows],
            "predicted": [class_names[c] for c in cols],
            "count": mistakes[rows, cols],
            "share_of_true": mistakes[rows, cols] / np.maximum(totals[rows], 1),
        }
    )
    table = table.sort_values(["count", "share_of_true"], ascending=False, kind="stable")
    return table.head(top_n).reset_index(drop=True)
