"""Is the model's confidence its accuracy? Expected calibration error and its figures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgcls.metrics import Predictions
from imgcls.reports.figures import plt

# torchmetrics' and most papers' default: 15 equal-width confidence bins.
DEFAULT_BINS = 15


@dataclass
class CalibrationBins:
    """Equal-width confidence bins: how many predictions fell in each, their mean confidence
    and their accuracy (NaN for empty bins)."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence| gap."""
        filled = self.counts > 0
        if not filled.any():
            return float("nan")
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((gaps * self.counts[filled]).sum() / self.counts.sum())


def calibration_bins(predictions: Predictions, n_bins: int = DEFAULT_BINS) -> CalibrationBins:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    confidence, correct = predictions.confidence, predictions.correct
    # Bins are [lo, hi); a confidence of exactly 1 goes into the last bin.
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins) / counts
    return CalibrationBins(edges, counts, mean_confidence, accuracy)


@dataclass
class SplitCalibration:
    """A test set's bins at its temperature and, when temperature scaling calibrated it, at
    temperature 1: computed once, read by the report (table, figures) and metrics.json."""

    bins: CalibrationBins
    uncalibrated: CalibrationBins | None

    def eces(self) -> dict[str, float]:
        """The ECE at temperature 1 (``ece`` itself for a split that is not calibrated) and at the split's."""
        return {"ece_uncalibrated": (self.uncalibrated or self.bins).ece, "ece": self.bins.ece}


def split_calibration(predictions: Predictions) -> SplitCalibration:
    raw = calibration_bins(predictions.uncalibrated()) if predictions.calibrated else None
    return SplitCalibration(calibration_bins(predictions), raw)


def plot_reliability_diagram(bins: CalibrationBins, title: str = "Reliability diagram"):
    """Accuracy per confidence bin against the diagonal of perfect calibration."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    width = np.diff(bins.edges)
    filled = bins.counts > 0
    top.bar(
        bins.edges[:-1][filled],
        bins.accuracy[filled],
        width=width[filled],
        align="edge",
        edgecolor="black",
        color="tab:blue",
        label="accuracy",
    )
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set(ylabel="Accuracy", ylim=(0, 1), title=f"{title} (ECE = {bins.ece:.4f})")
    top.legend(loc="upper left")
    bottom.bar(bins.edges[:-1], bins.counts, width=width, align="edge", edgecolor="black", color="gray")
    bottom.set(xlabel="Confidence (probability of the predicted class)", ylabel="Samples", xlim=(0, 1))
    fig.tight_layout()
    return fig


def plot_confidence_histogram(predictions: Predictions, n_bins: int = 20, title: str | None = None):
    """Confidence of correct and of wrong predictions: a good model is rarely confidently wrong."""
    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    correct = predictions.correct
    for mask, label, color in ((correct, "correct", "tab:green"), (~correct, "wrong", "tab:red")):
        ax.hist(
            predictions.confidence[mask],
            bins=edges,
            alpha=0.6,
            color=color,
            label=f"{label} ({int(mask.sum())})",
        )
    ax.set(
        xlabel="Confidence (probability of the predicted class)",
        ylabel="Samples",
        title=title or "Confidence of correct and wrong predictions",
        xlim=(0, 1),
    )
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig
