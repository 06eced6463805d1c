"""Grad-CAM overlays in the report: where the model looked in its most confident mistakes
(and in a sample of correct predictions), for the class it predicted."""

from __future__ import annotations

import math

import numpy as np
import torch

from imgcls.metrics import Predictions
from imgcls.models.grad_cam import class_activation_maps, find_target_layer, overlay
from imgcls.reports.error_gallery import mistake_caption, most_confident_mistakes
from imgcls.reports.figures import plt

NO_CONV_NOTE = "no Grad-CAM: the model has no convolutional layer (a flat net such as logreg or mlp)."


def cam_picks(predictions: Predictions, mistakes: int, correct: int, seed: int = 0) -> np.ndarray:
    """Rows to explain: the ``mistakes`` most confident mistakes, then ``correct`` correct rows
    drawn at random (``seed``), so they show typical successes rather than the easiest ones."""
    wrong = most_confident_mistakes(predictions, mistakes)
    right = np.flatnonzero(predictions.correct)
    sample = np.random.default_rng(seed).choice(right, size=min(correct, len(right)), replace=False)
    return np.concatenate([wrong, np.sort(sample)]).astype(np.int64)


def cam_section(model, predictions: Predictions, writer, mistakes: int, correct: int, target_layer=None) -> list[str]:
    """The report's Grad-CAM part of one test set (a figure, also sent to TensorBoard), or a note."""
    name = predictions.split
    lines = ["### Grad-CAM: where the model looked (predicted class)", ""]
    picks = cam_picks(predictions, mistakes, correct)
    if not predictions.has_images or not len(picks):
        return [*lines, "No images to explain." if len(picks) else "No images picked.", ""]
    images = np.stack([predictions.image(row) for row in picks])
    inputs = torch.from_numpy(images).float().div_(255.0).to(next(model.parameters()).device)
    layer = find_target_layer(model, inputs, target_layer)
    if layer is None:
        return [*lines, NO_CONV_NOTE, ""]
    heat = class_activation_maps(model, layer[1], inputs, predictions.predicted[picks])
    figure = plot_cam_gallery(predictions, picks, images, heat, f"Grad-CAM ({layer[0]}): {name}")
    path = writer.figure(figure, f"{name}/grad_cam.png")
    return [*lines, f"Layer `{layer[0]}`; red is where the predicted class's evidence lies.", "", f"![grad-cam]({path})", ""]


def plot_cam_gallery(predictions: Predictions, picks, images, heat, title: str, columns: int = 4):
    """Each picked image beside its overlay; captions ``true → predicted (p)``."""
    columns = min(columns, len(picks))
    rows = math.ceil(len(picks) / columns)
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(2.4 * 2 * columns, 2.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for slot, (row, image, cam) in enumerate(zip(picks, images, heat, strict=True)):
        original, explained = axes[slot // columns, 2 * (slot % columns)], axes[slot // columns, 2 * (slot % columns) + 1]
        if image.shape[0] == 1:
            original.imshow(image[0], cmap="gray", vmin=0, vmax=255)
        else:
            original.imshow(image[:3].transpose(1, 2, 0))
        explained.imshow(overlay(image, cam))
        kind = "wrong" if not predictions.correct[row] else "right"
        original.set_title(f"#{predictions.indices[row]} ({kind})", fontsize=9)
        explained.set_title(mistake_caption(predictions, row), fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
