"""Suspect labels: training and validation images whose given label the trained model
contradicts most, a list to check and relabel from.

A sample is suspect when the model predicts another class with at least ``min_confidence``;
the list is sorted by the loss of its given label (highest first), so a mislabelled image
the model is sure about comes before one it merely finds hard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from imgcls.display import display_name, display_names
from imgcls.metrics import Predictions
from imgcls.reports.error_gallery import plot_sample_grid
from imgcls.reports.predictions_table import sample_column

SUSPECT_LABELS_FILE = "suspect_labels.csv"


def suspects(splits: Sequence[Predictions], min_confidence: float = 0.5) -> list[tuple[Predictions, int]]:
    """``(predictions, row)`` of every suspect sample of ``splits``, the highest loss first."""
    found = []
    for split in splits:
        rows = np.flatnonzero(~split.correct & (split.confidence >= min_confidence))
        found += [(split, int(row)) for row in rows]
    return sorted(found, key=lambda item: -item[0].losses[item[1]])


def suspect_table(found: list[tuple[Predictions, int]]) -> pd.DataFrame:
    """Columns: ``split``, ``path`` (or ``index``), ``given_label``, ``predicted_label``,
    ``probability`` (of the predicted class) and ``loss`` (of the given label)."""
    columns = ["split", "path", "given_label", "predicted_label", "probability", "loss"]
    rows = []
    for predictions, row in found:
        names = display_names(predictions.class_names)
        rows.append({
            "split": predictions.split,
            sample_column(predictions): display_name(predictions.sample_id(row))
            if predictions.sample_paths is not None
            else int(predictions.indices[row]),
            "given_label": names[predictions.labels[row]],
            "predicted_label": names[predictions.predicted[row]],
            "probability": float(predictions.confidence[row]),
            "loss": float(predictions.losses[row]),
        })
    if found and found[0][0].sample_paths is None:
        columns[1] = "index"
    return pd.DataFrame(rows, columns=columns)


def plot_suspect_gallery(found: list[tuple[Predictions, int]], count: int = 16, columns: int = 4):
    return plot_sample_grid(
        found[:count],
        columns,
        "Suspect labels: given → predicted (p), highest loss first",
        empty="no suspect labels",
        show_split=True,
    )
