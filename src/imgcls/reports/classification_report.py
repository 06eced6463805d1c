"""Per-class precision/recall/F1/support and their averages (the headline metrics: imgcls.metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

from imgcls.display import display_names
from imgcls.metrics import Predictions

METRIC_COLUMNS = ["precision", "recall", "f1", "support"]


def per_class_table(predictions: Predictions) -> pd.DataFrame:
    """One row per class, worst first (lowest F1, then lowest recall, then most samples).

    Classes without predictions or samples score 0 instead of raising, as sklearn's
    ``zero_division=0``.
    """
    labels = np.arange(len(predictions.class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        predictions.labels, predictions.predicted, labels=labels, zero_division=0
    )
    table = pd.DataFrame(
        {
            "class_id": labels,
            "class": display_names(predictions.class_names),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(int),
        }
    )
    table = table.sort_values(["f1", "recall", "support"], ascending=[True, True, False], kind="stable")
    return table.reset_index(drop=True)


def averages_table(predictions: Predictions) -> pd.DataFrame:
    """Macro (every class counts the same) and weighted (by support) averages."""
    labels = np.arange(len(predictions.class_names))
    rows = []
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            predictions.labels, predictions.predicted, labels=labels, average=average, zero_division=0
        )
        rows.append(
            {
                "average": average,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": len(predictions.labels),
            }
        )
    return pd.DataFrame(rows)
