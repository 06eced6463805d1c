"""Grad-CAM: where in an image a model looks for a class, computed by the ``grad-cam`` library.

The layer explained is a spatial feature map: a name the user gives, else the one the net
declares (:meth:`ClassifierNet.cam_target_layer`), else the last convolutional stage, found
by running one image and taking the last module to finish that contains a ``Conv2d`` and
still outputs a ``[N, C, H, W]`` map larger than 1x1, i.e. the stage before global pooling
(``layer4`` of a ResNet, ``features`` of MobileNet, the last conv of the small CNN on 8x8 digits).
Flat nets (logistic regression, MLP) have none: :func:`find_target_layer` returns None.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from imgcls.config import ConfigError
from imgcls.models.net_interface import ClassifierNet

# Images explained in one backward pass.
CAM_BATCH = 32
# Saved overlays of small inputs (8x8 digits) are enlarged to at least this many pixels a side.
MIN_OVERLAY_SIDE = 128


def check_layer_name(model: nn.Module, name: str | None, key: str = "cam.target_layer") -> None:
    """Fail naming ``key`` when ``name`` is set and is not a module of ``model``."""
    modules = dict(model.named_modules())
    if name and name not in modules:
        convolutional = [n for n, m in modules.items() if n and _has_conv(m)]
        raise ConfigError(
            f"{key}={name!r} is not a module of {type(model).__name__}; its modules with convolutions "
            f"end with: {', '.join(convolutional[-8:]) or '(none)'}"
        )


def find_target_layer(
    model: nn.Module, sample: torch.Tensor, name: str | None = None, key: str = "cam.target_layer"
) -> tuple[str, nn.Module] | None:
    """``(name, module)`` of the layer to explain in ``model`` (names as ``model.named_modules()``
    gives them; ``key`` is the config value that set ``name``); ``sample`` is an input batch
    whose first image is run. None when the model has no convolutional layer."""
    modules = dict(model.named_modules())
    if name:
        check_layer_name(model, name, key)
        return name, modules[name]
    for module in modules.values():
        declared = module.cam_target_layer() if isinstance(module, ClassifierNet) else None
        if declared is not None:
            return next(n for n, m in modules.items() if m is declared), declared
    candidates = [n for n in _spatial_layers(model, sample) if _has_conv(modules[n])]
    return (candidates[-1], modules[candidates[-1]]) if candidates else None


def _spatial_layers(model: nn.Module, sample: torch.Tensor) -> list[str]:
    """Modules whose output is a ``[N, C, H, W]`` map larger than 1x1, in the order they finish."""
    finished: list[str] = []

    def record(name):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-2] * output.shape[-1] > 1:
                finished.append(name)

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(sample[:1].to(_device(model)))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(reversed(finished)))[::-1]  # a module run twice counts where it last finished


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def _device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def class_activation_maps(model: nn.Module, layer: nn.Module, images: torch.Tensor, classes) -> np.ndarray:
    """Grad-CAM heat maps ``[N, H, W]`` in [0, 1] (input size) of ``classes[i]`` for ``images[i]``."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    classes = [int(c) for c in classes]
    was_training = model.training
    model.eval()  # BatchNorm and dropout as at inference
    maps = []
    try:
        with torch.inference_mode(False), torch.enable_grad(), GradCAM(model=model, target_layers=[layer]) as cam:
            for start in range(0, len(images), CAM_BATCH):
                # An input that needs gradients: a frozen backbone still passes them to the layer.
                batch = images[start : start + CAM_BATCH].detach().clone().requires_grad_(True)
                targets = [ClassifierOutputTarget(c) for c in classes[start : start + CAM_BATCH]]
                maps.append(cam(input_tensor=batch, targets=targets))
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return np.concatenate(maps) if maps else np.zeros((0, *images.shape[-2:]), dtype=np.float32)


def overlay(image: np.ndarray, heat: np.ndarray, enlarge: bool = False) -> np.ndarray:
    """The heat map blended over a uint8 ``[C, H, W]`` image (grayscale or RGB), as uint8 ``[H, W, 3]``;
    ``enlarge`` scales small images up by a whole factor (nearest pixel), for files."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image[:3]
    blended = show_cam_on_image(rgb.transpose(1, 2, 0).astype(np.float32) / 255.0, heat, use_rgb=True)
    factor = max(1, math.ceil(MIN_OVERLAY_SIDE / min(blended.shape[:2]))) if enlarge else 1
    return blended.repeat(factor, axis=0).repeat(factor, axis=1)
