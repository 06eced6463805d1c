"""Per-class precision/recall/F1/support, their averages, and the split's headline metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from imgcls.metrics import TOP_K
from imgcls.reports.evaluation import Predictions

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
            "class": predictions.class_names,
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


def headline_metrics(predictions: Predictions, ordinal: bool = False) -> dict[str, float]:
    """Top-1 and top-k accuracy, macro/weighted F1, and quadratic weighted kappa for ordinal labels."""
    labels, k = np.arange(len(predictions.class_names)), len(predictions.class_names)
    metrics = {"samples": int(len(predictions.labels))}
    if not len(predictions.labels):
        return metrics
    metrics["acc"] = float(accuracy_score(predictions.labels, predictions.predicted))
    if k > TOP_K:
        metrics[f"top{TOP_K}"] = float(
            top_k_accuracy_score(predictions.labels, predictions.probabilities, k=TOP_K, labels=labels)
        )
    for row in averages_table(predictions).itertuples():
        metrics[f"{row.average}_f1"] = float(row.f1)
    if ordinal:
        # Off-by-one grades cost less than distant ones: the retinopathy (Kaggle) metric.
        metrics["quadratic_kappa"] = float(
            cohen_kappa_score(predictions.labels, predictions.predicted, labels=labels, weights="quadratic")
        )
    return metrics


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub table: floats to 4 decimals, everything else (override values too) as written."""

    def cell(value) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float | np.floating):
            return f"{value:.4f}"
        return str(value).replace("\n", " ").replace("|", "\\|")  # one table row per record

    return table.map(cell).to_markdown(index=False, disable_numparse=True)
