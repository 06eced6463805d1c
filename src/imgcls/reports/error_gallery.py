"""The most confident mistakes, shown as images labelled ``true → predicted (p)``."""

from __future__ import annotations

import math
import textwrap

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
    titles = [_cell_title(predictions, row, show_split) for predictions, row in samples]
    lines = max(title.count("\n") + 1 for title in titles)
    # Each cell: a 2.2-inch image under its title's lines; constrained layout keeps them apart.
    height = rows * (2.2 + lines * _LINE_INCHES) + 0.5
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, height), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (predictions, row) in zip(axes.flat, samples, strict=False):
        image = predictions.image(row)
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.transpose(1, 2, 0))
    for ax, text in zip(axes.flat, titles, strict=False):
        ax.set_title(text, fontsize=_TITLE_POINTS)
    fig.suptitle(title)
    return fig


# A cell's title: 9-point text, as many characters a line as fit the 2.6-inch cell.
_TITLE_POINTS, _TITLE_CHARS, _LINE_INCHES = 9, 30, 0.17


def _cell_title(predictions: Predictions, row: int, show_split: bool) -> str:
    """The file name (its middle elided when it is too long: the end tells files apart), then
    ``true → predicted (p)``, wrapped to the cell's width."""
    name = predictions.sample_caption(row)
    if len(name) > _TITLE_CHARS:
        keep = _TITLE_CHARS - 1
        name = f"{name[: keep // 3]}…{name[-(keep - keep // 3):]}"
    if show_split:
        name = f"{predictions.split} {name}" if len(name) + len(predictions.split) < _TITLE_CHARS else f"{predictions.split}\n{name}"
    caption = textwrap.wrap(mistake_caption(predictions, row), _TITLE_CHARS, break_on_hyphens=False)
    return "\n".join([name, *caption])
