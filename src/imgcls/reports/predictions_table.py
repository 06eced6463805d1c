"""``predictions.csv``: one row per evaluated image of a test set. The one owner of its format.

Columns: ``path`` (file datasets) or ``index`` (the position in an array dataset's split),
``true_label``, ``predicted_label``, ``probability`` (of the predicted class), the top
``k`` classes as ``label_i``/``prob_i``, and ``loss`` (the training criterion). Rows are in
the split's order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from imgcls.display import display_name, display_names
from imgcls.metrics import TOP_K, Predictions

PREDICTIONS_FILE = "predictions.csv"


def sample_column(predictions: Predictions) -> str:
    return "path" if predictions.sample_paths is not None else "index"


def sample_ids(predictions: Predictions) -> list:
    """Each row's sample: its file path, or its position (an integer) in the split."""
    if predictions.sample_paths is None:
        return [int(position) for position in predictions.indices]
    return [display_name(predictions.sample_id(row)) for row in range(len(predictions.labels))]


def predictions_table(predictions: Predictions, top_k: int = TOP_K) -> pd.DataFrame:
    names = np.asarray(display_names(predictions.class_names), dtype=object)
    probabilities = predictions.probabilities
    k = min(top_k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    columns: dict[str, object] = {
        sample_column(predictions): sample_ids(predictions),
        "true_label": names[predictions.labels],
        "predicted_label": names[predictions.predicted],
        "probability": predictions.confidence,
    }
    for rank in range(k):
        columns[f"label_{rank + 1}"] = names[top[:, rank]]
        columns[f"prob_{rank + 1}"] = np.take_along_axis(probabilities, top[:, rank : rank + 1], axis=1)[:, 0]
    losses = predictions.losses
    columns["loss"] = losses if losses is not None else np.full(len(predictions.labels), np.nan)
    return pd.DataFrame(columns)


def write_predictions(predictions: Predictions, path) -> None:
    # File names that are not valid UTF-8 are written with backslash escapes, as predict.py does.
    predictions_table(predictions).to_csv(path, index=False, encoding="utf-8", errors="backslashreplace")
