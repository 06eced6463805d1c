"""The most confident mistakes, shown as images labelled ``true → predicted (p)``."""

from __future__ import annotations

import math

import numpy as np

from imgcls.display import display_names
from imgcls.metrics import Predictions
from imgcls.reports.figures import plt


def most_confident_mistakes(predictions: Predictions, count: int) -> np.ndarray:
    """Indices of wrong predictions, the most confident first."""
    wrong = np.flatnonzero(~predictions.correct)
    order = np.argsort(-predictions.confidence[wrong], kind="stable")
    return wrong[order][:count]


def mistake_caption(predictions: Predictions, index: int) -> str:
    names = display_names(predictions.class_names)
    true, predicted = names[predictions.labels[index]], names[predictions.predicted[index]]
    return f"{true} → {predicted} ({predictions.confidence[index]:.2f})"


def plot_error_gallery(predictions: Predictions, count: int = 16, columns: int = 4, title: str | None = None):
    """A grid of the ``count`` most confident mistakes, or a note when there are none."""
    picks = most_confident_mistakes(predictions, count)
    return plot_sample_grid(
        [(predictions, int(row)) for row in picks],
        columns,
        title or "Most confident mistakes: true → predicted (p)",
        empty="no mistakes",
    )


def plot_sample_grid(samples, columns: int = 4, title: str = "", empty: str = "none", show_split: bool = False):
    """Images of ``samples``, ``(predictions, row)`` pairs, each titled with its file name (or
    ``#index``; after its split's name with ``show_split``) and ``true → predicted (p)``; a
    note saying ``empty`` when there are none."""
    if not samples or not samples[0][0].has_images:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, empty if not samples else "no images", ha="center", va="center")
        return fig
    columns = min(columns, len(samples))
    rows = math.ceil(len(samples) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (predictions, row) in zip(axes.flat, samples, strict=False):
        image = predictions.image(row)
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.transpose(1, 2, 0))
        name = f"{predictions.split} {predictions.sample_caption(row)}" if show_split else predictions.sample_caption(row)
        ax.set_title(f"{name}\n{mistake_caption(predictions, row)}", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
