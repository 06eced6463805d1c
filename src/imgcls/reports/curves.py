"""Training curves (loss and accuracy, train and val, per epoch) from a run's CSV log."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from imgcls.reports.figures import plt

# Where conf/logger/csv.yaml makes Lightning's CSVLogger write, relative to the run dir.
CSV_METRICS = Path("csv") / "metrics.csv"


def epoch_metrics(csv_path: str | Path) -> pd.DataFrame:
    """One row per epoch, by its number as the console shows it (1-based; Lightning's CSV
    counts from 0): the epoch-level value of every logged metric.

    Lightning writes each logged value on its own sparse row; step-level duplicates of a
    metric logged on both step and epoch (``train/loss_step``) are dropped for the
    ``_epoch`` version, which is renamed back to ``train/loss``. Other columns (lr-*) stay.
    """
    frame = pd.read_csv(csv_path)
    if "epoch" not in frame:
        raise ValueError(f"{csv_path}: no 'epoch' column; is it a Lightning CSVLogger metrics.csv?")
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_step") or c == "step"])
    frame = frame.rename(columns={c: c.removesuffix("_epoch") for c in frame.columns if c.endswith("_epoch")})
    # Test metrics are logged after training, under the next epoch number: not a curve point.
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("test")])
    frame = frame.dropna(subset=["epoch"]).dropna(
        how="all", subset=[c for c in frame.columns if c != "epoch"]
    )
    frame["epoch"] = frame["epoch"].astype(int) + 1
    return frame.groupby("epoch", as_index=True).last().sort_index()


def plot_training_curves(epochs: pd.DataFrame, metrics: tuple[str, ...] = ("loss", "acc"), title: str = ""):
    """One panel per metric with its train and val curves."""
    panels = [m for m in metrics if any(f"{split}/{m}" in epochs for split in ("train", "val"))]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4), squeeze=False)
    for ax, metric in zip(axes.flat, panels, strict=False):
        for split, style in (("train", "-o"), ("val", "-s")):
            column = f"{split}/{metric}"
            if column in epochs:
                series = epochs[column].dropna()
                ax.plot(series.index, series.values, style, markersize=3, label=split)
        ax.set(xlabel="Epoch", ylabel=metric, title=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
