"""Models ready for inference on image files: a trained checkpoint or a torchvision model with its weights.

A model is named by a *spec*:

- ``path/to/run/checkpoints/epoch012.ckpt``: an imgcls checkpoint, on its own classes;
- ``mobilenet_v2:IMAGENET1K_V1`` (or ``resnet18:DEFAULT``, or just ``resnet18``): torchvision
  weights, ImageNet's 1,000 categories, with the weights' own preprocessing;
- ``mobilenet_v2:path/to/state_dict.pth``: that architecture with a saved state dict, using
  the categories and preprocessing of the architecture's default weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from imgcls.data.image_io import load_image
from imgcls.errors import MissingFileError

CHECKPOINT_SUFFIXES = (".ckpt",)
ONNX_SUFFIXES = (".onnx",)
STATE_DICT_SUFFIXES = (".pth", ".pt")


@dataclass
class InferenceModel:
    """``preprocess(path)`` decodes a file into the float ``[C, H, W]`` tensor that ``net`` takes;
    ``normalization`` is the ``(mean, std)`` it applied, None when its output is the image in [0, 1]."""

    name: str
    net: nn.Module
    class_names: list[str]
    preprocess: Callable[[str | Path], torch.Tensor]
    input_shape: tuple[int, int, int]
    weights_file: Path | None
    # A checkpoint's temperature (training/temperature.py); 1: the raw softmax.
    temperature: float = 1.0
    normalization: tuple[list[float], list[float]] | None = None

    def pixels(self, batch: torch.Tensor) -> torch.Tensor:
        """The uint8 images that preprocessed ``batch`` shows (normalization undone)."""
        if self.normalization is not None:
            mean, std = (torch.tensor(v, dtype=batch.dtype).view(1, -1, 1, 1) for v in self.normalization)
            batch = batch * std + mean
        return batch.clamp(0, 1).mul(255).round().to(torch.uint8)

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor, tta: str = "none") -> torch.Tensor:
        """Softmax of ``net``'s logits at the temperature; with ``tta`` (inference/tta.py),
        averaged over the views."""
        from imgcls.inference.tta import averaged_probabilities

        return averaged_probabilities(lambda images: self.net(images).float() / self.temperature, batch, tta)


def load_inference_model(spec: str, trust_checkpoint: bool = False, calibrated: bool = True) -> InferenceModel:
    """The model a spec names (see the module docstring); a checkpoint's probabilities are
    calibrated by its temperature unless ``calibrated`` is false."""
    if Path(spec).suffix in CHECKPOINT_SUFFIXES:
        return from_checkpoint(spec, trust=trust_checkpoint, calibrated=calibrated)
    if Path(spec).suffix in ONNX_SUFFIXES:
        return from_onnx(spec, calibrated)
    name, _, weights = spec.partition(":")
    if Path(weights).suffix in STATE_DICT_SUFFIXES or "/" in weights:
        return from_state_dict(name, weights)
    return from_torchvision(name, weights or "DEFAULT")


def load_classifier(ckpt_path: str | Path, map_location: str | torch.device = "cpu", trust: bool = False):
    """An imgcls ``ImageClassifier`` from its checkpoint, in eval mode; read as weights and
    plain data only unless ``trust`` (a checkpoint someone sent must not run code)."""
    from imgcls.models.classifier import ImageClassifier

    return ImageClassifier.from_checkpoint(Path(ckpt_path), map_location=map_location, trust=trust).eval()


def from_checkpoint(ckpt_path: str | Path, trust: bool = False, calibrated: bool = True) -> InferenceModel:
    """A trained imgcls checkpoint: images are decoded to its training input shape, in [0, 1];
    probabilities at its temperature when ``calibrated``."""
    model = load_classifier(ckpt_path, trust=trust)
    channels, height, width = (int(v) for v in model.hparams.input_shape)

    def preprocess(path):
        return torch.tensor(load_image(path, channels, (height, width)), dtype=torch.float32).div_(255.0)

    return InferenceModel(
        name=str(ckpt_path),  # the full path: it says which run the checkpoint comes from
        net=model,
        class_names=model.class_names,
        preprocess=preprocess,
        input_shape=(channels, height, width),
        weights_file=Path(ckpt_path),
        temperature=float(model.temperature) if calibrated else 1.0,
    )


class OnnxNet(nn.Module):
    """An exported ONNX file run by onnxruntime on the CPU, called like the net it came from."""

    def __init__(self, path: str | Path):
        super().__init__()
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(None, {self.input_name: images.cpu().float().numpy()})
        return torch.from_numpy(logits)


def from_onnx(path: str | Path, calibrated: bool = True) -> InferenceModel:
    """An ONNX file written by export.py: its metadata names the classes, the input shape and
    the temperature (used unless ``calibrated`` is false)."""
    from imgcls.inference.onnx_export import read_metadata

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"ONNX file not found: {path}")
    metadata = read_metadata(path)
    channels, height, width = (int(v) for v in metadata["input_shape"])

    def preprocess(file):
        return torch.tensor(load_image(file, channels, (height, width)), dtype=torch.float32).div_(255.0)

    return InferenceModel(
        name=str(path),
        net=OnnxNet(path),
        class_names=list(metadata["class_names"]),
        preprocess=preprocess,
        input_shape=(channels, height, width),
        weights_file=path,
        temperature=metadata["temperature"] if calibrated else 1.0,
    )


def from_torchvision(model_name: str, weights_name: str = "DEFAULT") -> InferenceModel:
    """A torchvision architecture with its pretrained weights, from the same cache file that
    training uses (``$TORCH_HOME/hub/checkpoints``, downloaded when missing and the network
    allows; otherwise :class:`~imgcls.models.weights.PretrainedWeightsMissing` says which file
    to put where)."""
    from imgcls.models.weights import pretrained_model, resolve_weights, weights_file

    weights = resolve_weights(model_name, weights_name)
    net = pretrained_model(model_name, weights)
    return _imagenet_model(f"{model_name}:{weights_name}", net.eval(), weights, weights_file(weights))


def from_state_dict(model_name: str, state_dict_path: str | Path) -> InferenceModel:
    """A torchvision architecture loaded from a saved state dict (ImageNet categories and preprocessing)."""
    from torchvision.models import get_model

    from imgcls.models.weights import resolve_weights

    path = Path(state_dict_path)
    if not path.is_file():
        raise MissingFileError(f"state dict not found: {path}")
    weights = resolve_weights(model_name, pretrained=True)
    net = get_model(model_name, num_classes=len(weights.meta["categories"]))
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return _imagenet_model(f"{model_name}:{path.name}", net.eval(), weights, path)


def _imagenet_model(name: str, net: nn.Module, weights, file: Path) -> InferenceModel:
    transform = weights.transforms()
    crop = int(transform.crop_size[0])

    def preprocess(path):
        return transform(torch.from_numpy(load_image(path, 3)))

    return InferenceModel(
        name=name,
        net=net,
        class_names=list(weights.meta["categories"]),
        preprocess=preprocess,
        input_shape=(3, crop, crop),
        weights_file=file,
        normalization=(list(transform.mean), list(transform.std)),
    )
