"""The most confident mistakes, shown as images labelled ``true → predicted (p)``."""

from __future__ import annotations

import math

import numpy as np

from imgcls.metrics import Predictions
from imgcls.reports.figures import plt


def most_confident_mistakes(predictions: Predictions, count: int) -> np.ndarray:
    """Indices of wrong predictions, the most confident first."""
    wrong = np.flatnonzero(~predictions.correct)
    order = np.argsort(-predictions.confidence[wrong], kind="stable")
    return wrong[order][:count]


def mistake_caption(predictions: Predictions, index: int) -> str:
    names = predictions.class_names
    true, predicted = names[predictions.labels[index]], names[predictions.predicted[index]]
    return f"{true} → {predicted} ({predictions.confidence[index]:.2f})"


def plot_error_gallery(predictions: Predictions, count: int = 16, columns: int = 4, title: str | None = None):
    """A grid of the ``count`` most confident mistakes, or a note when there are none."""
    picks = most_confident_mistakes(predictions, count)
    if not predictions.has_images or not len(picks):
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes" if not len(picks) else "no images", ha="center", va="center")
        return fig
    columns = min(columns, len(picks))
    rows = math.ceil(len(picks) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, picks, strict=False):
        image = predictions.image(index)
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.transpose(1, 2, 0))
        ax.set_title(f"{predictions.sample_caption(index)}\n{mistake_caption(predictions, index)}", fontsize=9)
    fig.suptitle(title or "Most confident mistakes: true → predicted (p)")
    fig.tight_layout()
    return fig
