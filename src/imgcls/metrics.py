"""The metrics every split reports, as one torchmetrics collection."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

TOP_K = 5


def classification_metrics(num_classes: int, prefix: str, ordinal: bool = False) -> MetricCollection:
    """Accuracy, top-5 accuracy (when there are more than 5 classes), macro precision/recall/F1,
    and for ordered classes (``ordinal``) quadratic weighted kappa as ``kappa``.

    Macro averages skip classes absent from both targets and predictions, as sklearn does.
    """
    metrics = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "precision": MulticlassPrecision(num_classes, average="macro"),
        "recall": MulticlassRecall(num_classes, average="macro"),
        "f1": MulticlassF1Score(num_classes, average="macro"),
    }
    if ordinal:
        metrics["kappa"] = MulticlassCohenKappa(num_classes, weights="quadratic")
    if num_classes > TOP_K:
        metrics[f"top{TOP_K}"] = MulticlassAccuracy(num_classes, top_k=TOP_K, average="micro")
    return MetricCollection(metrics, prefix=prefix)
