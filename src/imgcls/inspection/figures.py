"""The inspection's figures: class counts, image size histograms, a sample grid per class."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imgcls.reports.figures import plt


def class_count_chart(counts: pd.DataFrame, title: str = "Images per class"):
    """Grouped bars: one group per class, one bar per split (the ``total`` column is left out)."""
    splits = counts.drop(columns="total")
    fig, ax = plt.subplots(figsize=(min(4 + 0.35 * len(counts) * max(1, len(splits.columns) / 2), 40), 4.5))
    splits.plot.bar(ax=ax, width=0.8)
    ax.set(xlabel="Class", ylabel="Images", title=title)
    ax.tick_params(axis="x", labelrotation=90 if len(counts) > 10 else 45)
    fig.tight_layout()
    return fig


def size_histograms(catalog: pd.DataFrame, bins: int = 30):
    """Height and width histograms per split, and images per mode."""
    readable = catalog[catalog["error"].isna()]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, dim in zip(axes[:2], ("height", "width"), strict=True):
        for split, group in readable.groupby("split", sort=False):
            ax.hist(group[dim].astype(float), bins=bins, alpha=0.5, label=split)
        ax.set(xlabel=f"{dim} (pixels)", ylabel="Images", title=f"Image {dim}s")
        ax.legend()
    readable["mode"].value_counts().plot.bar(ax=axes[2], title="Image modes", ylabel="Images", rot=0)
    fig.tight_layout()
    return fig


def sample_grid(samples: dict[str, np.ndarray]):
    """One row per class (``name -> uint8 [k, C, H, W]``), its name on the left."""
    columns = max((len(images) for images in samples.values()), default=1)
    fig, axes = plt.subplots(
        len(samples), columns, figsize=(1.2 * columns + 1.5, 1.2 * len(samples)), squeeze=False
    )
    for row, (name, images) in zip(axes, samples.items(), strict=True):
        for i, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.axis("on" if i == 0 else "off")
            if i < len(images):
                image = images[i].transpose(1, 2, 0)
                ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=11)
        for spine in row[0].spines.values():
            spine.set_visible(False)
    fig.tight_layout()
    return fig


def near_duplicate_grid(pairs: list[tuple[np.ndarray, str, np.ndarray, str, int]]):
    """One row per near-duplicate pair (uint8 ``[C, H, W]`` images and their captions), its
    pHash distance in the title."""
    fig, axes = plt.subplots(len(pairs), 2, figsize=(5.5, 2.7 * len(pairs)), squeeze=False)
    for row, (image_a, caption_a, image_b, caption_b, distance) in zip(axes, pairs, strict=True):
        for ax, image, caption in ((row[0], image_a, caption_a), (row[1], image_b, caption_b)):
            ax.axis("off")
            image = image.transpose(1, 2, 0)
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{caption}\n(distance {distance})", fontsize=8)
    fig.suptitle("Near-duplicates across splits (pHash bits apart)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig
