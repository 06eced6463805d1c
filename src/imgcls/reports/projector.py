"""TensorBoard's embedding projector of a test set: each image's penultimate features, its
thumbnail and what the model made of it (true and predicted label, correct, file)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from imgcls.display import display_name
from imgcls.metrics import Predictions
from imgcls.models.embeddings import embeddings

METADATA_HEADER = ["label", "predicted", "correct", "confidence", "sample"]


def projector_rows(predictions: Predictions, max_images: int, seed: int = 0) -> np.ndarray:
    """At most ``max_images`` rows, drawn at random (``seed``) so every class shows even in a
    test set sorted by class; in evaluation order."""
    rows = np.arange(len(predictions.labels))
    if len(rows) > max_images:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_images, replace=False))
    return rows


def thumbnails(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` images as float RGB thumbnails in [0, 1], the longer side at most ``size``."""
    batch = torch.from_numpy(images).float().div_(255.0)
    if batch.shape[1] == 1:
        batch = batch.expand(-1, 3, -1, -1)
    batch = batch[:, :3]
    scale = size / max(batch.shape[2:])
    if scale < 1:
        shape = [max(1, round(side * scale)) for side in batch.shape[2:]]
        batch = F.interpolate(batch, size=shape, mode="bilinear", antialias=True, align_corners=False)
    return batch.clamp(0, 1)


def metadata(predictions: Predictions, rows: np.ndarray) -> list[list[str]]:
    """One row per point, as METADATA_HEADER; no tabs or line breaks, which TSV cannot hold.

    The Projector labels points by the first column that holds a non-number (its
    updateMetadataUI), so class names that all read as numbers (digits' 0-9) are written
    ``class 3``: else it would skip label and predicted and label every point yes/no."""
    names = [display_name(name) for name in predictions.class_names]
    if all(_reads_as_number(name) for name in names):
        names = [f"class {name}" for name in names]
    table = []
    for row in rows:
        cells = [
            names[predictions.labels[row]],
            names[predictions.predicted[row]],
            "yes" if predictions.correct[row] else "no",
            f"{predictions.confidence[row]:.3f}",
            display_name(predictions.sample_id(row)),
        ]
        table.append([" ".join(cell.split()) for cell in cells])
    return table


# A string JavaScript's Number() reads as a number (isNaN false), as the Projector tests values.
_JS_NUMBER = re.compile(
    r"\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity|0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+)?\s*"
)


def _reads_as_number(text: str) -> bool:
    return _JS_NUMBER.fullmatch(text) is not None


def projector_section(
    model, predictions: Predictions, writer, max_images: int, thumbnail_size: int, seed: int = 0
) -> list[str]:
    """Write ``predictions``' projector to the writer's TensorBoard (tag ``projector/<split>``);
    return the report's lines about it."""
    lines = ["### Embedding projector", ""]
    if writer.tensorboard is None:
        return [*lines, "No TensorBoard logger, so no projector (logger=default has one).", ""]
    if not predictions.has_images:
        return [*lines, "No images to project.", ""]
    rows = projector_rows(predictions, max_images, seed)
    images = np.stack([predictions.image(row) for row in rows])
    features = embeddings(model, torch.from_numpy(images).float().div_(255.0))
    tag = f"projector/{predictions.split}"
    writer.tensorboard.add_embedding(
        features,
        metadata=metadata(predictions, rows),
        label_img=thumbnails(images, thumbnail_size),
        global_step=writer.global_step,
        tag=tag,
        metadata_header=METADATA_HEADER,
    )
    writer.tensorboard.flush()
    log_dir = Path(writer.tensorboard.get_logdir())  # without the trailing slash it may have
    return [
        *lines,
        f"{len(rows)} of the {len(predictions.labels)} images as points of their {features.shape[1]} "
        f"penultimate features (`{tag}`), with thumbnails, coloured by true or predicted label or "
        f"correctness: `tensorboard --logdir {log_dir}`, then the Projector tab.",
        "",
    ]
