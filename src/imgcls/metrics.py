"""What every split reports, defined once.

Training and validation epochs accumulate torchmetrics collections batch by batch. Test
sets are evaluated in one pass whose per-sample predictions (:class:`Predictions`) are
kept; :func:`split_metrics` turns them into the headline numbers that ``metrics.json``,
the console, TensorBoard and the report all show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCohenKappa,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

TOP_K = 5


def split_prefix(test_set: str) -> str:
    """Metric prefix of a test set: ``test/`` for the main one, ``test_<name>/`` for extras."""
    return "test/" if test_set == "test" else f"test_{test_set}/"


def classification_metrics(
    num_classes: int, prefix: str, ordinal: bool = False, top_k: bool = True
) -> MetricCollection:
    """Accuracy, top-5 accuracy (when there are more than 5 classes and ``top_k``), macro
    precision/recall/F1, and for ordered classes (``ordinal``) quadratic weighted kappa as ``kappa``.

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
    if top_k and num_classes > TOP_K:
        metrics[f"top{TOP_K}"] = MulticlassAccuracy(num_classes, top_k=TOP_K, average="micro")
    # No compute groups: torchmetrics merges metrics whose states are equal after the first
    # update, and a first batch of one class makes top-5, F1 and accuracy look equal; merged,
    # they then report the same number for the whole epoch.
    return MetricCollection(metrics, prefix=prefix, compute_groups=False)


class EpochMetrics(nn.Module):
    """The same metrics as :func:`classification_metrics`, for the training loop's hot path.

    Updating a metric collection costs about 0.7 ms a step, as much as a small model's
    whole step. Here a step only keeps each sample's predicted class and whether its
    target is in the top 5 (a few tensor ops, no host sync); the epoch end feeds them to
    the torchmetrics collection in one update. Memory: two integers and a flag per sample.
    """

    def __init__(self, num_classes: int, prefix: str, ordinal: bool = False):
        super().__init__()
        self.prefix = prefix
        self.metrics = classification_metrics(num_classes, prefix, ordinal, top_k=False)
        self.top_k = MeanMetric() if num_classes > TOP_K else None
        self._predictions: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._top_k_hits: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self._predictions.append(logits.argmax(dim=1))
        self._targets.append(targets)
        if self.top_k is not None:
            self._top_k_hits.append((logits.topk(TOP_K, dim=1).indices == targets[:, None]).any(dim=1))

    def compute(self) -> dict[str, torch.Tensor]:
        if self._predictions:  # fold what the steps kept into the metrics' state
            self.metrics.update(torch.cat(self._predictions), torch.cat(self._targets))
            if self.top_k is not None:
                self.top_k.update(torch.cat(self._top_k_hits).float())
            self._predictions, self._targets, self._top_k_hits = [], [], []
        results = dict(self.metrics.compute())
        if self.top_k is not None:
            results[f"{self.prefix}top{TOP_K}"] = self.top_k.compute()
        return results

    def reset(self) -> None:
        self.metrics.reset()
        if self.top_k is not None:
            self.top_k.reset()
        self._predictions, self._targets, self._top_k_hits = [], [], []


@dataclass
class Predictions:
    """One evaluated split: class probabilities ``[N, K]``, true labels ``[N]`` and each
    row's position in the split (``indices``), in evaluation order.

    ``losses`` are the per-sample training criterion (class weights included) and
    ``loss_weights`` each sample's class weight, so the split's loss is their weighted mean.
    ``logits`` are the model's raw outputs, ``probabilities`` their softmax at ``temperature``
    (1: uncalibrated; see training/temperature.py). ``image_source`` (the split's uint8 images, indexable by
    position) lets reports show samples and ``sample_paths`` (the split's files, by
    position; None for array datasets) name them; ``evaluated_of`` is the split's size when
    only part of it was evaluated.
    """

    split: str
    probabilities: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    indices: np.ndarray | None = None
    losses: np.ndarray | None = None
    loss_weights: np.ndarray | None = None
    image_source: object | None = None
    evaluated_of: int | None = None
    logits: np.ndarray | None = None
    temperature: float = 1.0
    sample_paths: list[str] | None = None

    def __post_init__(self) -> None:
        if self.indices is None:
            self.indices = np.arange(len(self.labels))

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of the predicted class."""
        return self.probabilities.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @property
    def has_images(self) -> bool:
        return self.image_source is not None

    def image(self, row: int) -> np.ndarray:
        """The uint8 ``[C, H, W]`` image of row ``row``."""
        image = self.image_source[int(self.indices[row])]
        return image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)

    def sample_id(self, row: int) -> str:
        """What names row ``row``'s sample: its file path, or its position in the split."""
        position = int(self.indices[row])
        return self.sample_paths[position] if self.sample_paths is not None else str(position)

    def sample_caption(self, row: int) -> str:
        """A short name for figures: the file name (escaped where it is not valid UTF-8), or
        ``#<position>``."""
        from imgcls.display import display_name

        position = int(self.indices[row])
        return display_name(Path(self.sample_paths[position]).name) if self.sample_paths is not None else f"#{position}"

    @property
    def calibrated(self) -> bool:
        return self.temperature != 1.0 and self.logits is not None

    def uncalibrated(self) -> Predictions:
        """The same predictions at temperature 1 (the model's raw softmax)."""
        if not self.calibrated:
            return self
        shifted = self.logits - self.logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return replace(self, probabilities=exp / exp.sum(axis=1, keepdims=True), temperature=1.0)

    @property
    def limited(self) -> bool:
        return self.evaluated_of is not None and self.evaluated_of != len(self.labels)


def split_metrics(predictions: Predictions, ordinal: bool = False) -> dict[str, float]:
    """The headline numbers of an evaluated split, in float64: ``acc``, ``top5`` (more than
    5 classes), macro ``precision``/``recall``/``f1`` (over the classes present in targets
    or predictions, as the training-time metrics), ``weighted_f1``, ``kappa`` (quadratic
    weighted, for ordered classes) and ``loss`` (the training criterion)."""
    from sklearn.metrics import (
        accuracy_score,
        cohen_kappa_score,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    labels, predicted = predictions.labels, predictions.predicted
    metrics: dict[str, float] = {}
    if not len(labels):
        return metrics
    k = len(predictions.class_names)
    metrics["acc"] = float(accuracy_score(labels, predicted))
    if k > TOP_K:
        metrics[f"top{TOP_K}"] = float(
            top_k_accuracy_score(labels, predictions.probabilities, k=TOP_K, labels=np.arange(k))
        )
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="macro", zero_division=0
    )
    metrics.update(precision=float(precision), recall=float(recall), f1=float(f1))
    _, _, weighted_f1, _ = precision_recall_fscore_support(labels, predicted, average="weighted", zero_division=0)
    metrics["weighted_f1"] = float(weighted_f1)
    if ordinal:
        # Off-by-one grades cost less than distant ones: the retinopathy (Kaggle) metric.
        metrics["kappa"] = float(cohen_kappa_score(labels, predicted, labels=np.arange(k), weights="quadratic"))
    if predictions.losses is not None:
        weights = predictions.loss_weights if predictions.loss_weights is not None else np.ones(len(labels))
        metrics["loss"] = float(predictions.losses.sum() / weights.sum())
    return metrics
