"""Any torchvision classification model by name, ready for transfer learning.

``TorchvisionNet`` builds ``torchvision.models.get_model(name)``, loads pretrained weights
through torchvision's own cache (``$TORCH_HOME/hub/checkpoints``, so cached files work
offline; :mod:`imgcls.models.weights` names, finds and downloads them), replaces the
classifier for the data's class count, and takes its preprocessing from the weights: their
mean/std (``input_normalization``, applied by the classifier) and their input size (images
are resized on the device, in batches, inside ``forward``).

Fine-tuning strategies (``full``, ``frozen``, ``gradual``): see :mod:`imgcls.models.finetuned_net`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.transforms import v2

from imgcls.models.finetuned_net import FinetunedNet
from imgcls.models.weights import pretrained_model, resolve_weights

# Input size of models trained from scratch: the ImageNet size every architecture accepts.
SCRATCH_INPUT_SIZE = 224


def preprocess_for(weights: WeightsEnum | None, input_size: Sequence[int] | None = None) -> v2.Compose:
    """Whole-photo preprocessing of the weights' recipe, without normalization (the
    classifier normalizes): uint8 ``[..., C, H, W]`` in, float ``[..., C, crop, crop]`` in [0, 1] out.

    With weights: resize the shorter side to their ``resize_size``, center-crop ``crop_size``.
    Without: resize to ``input_size``.
    """
    if weights is None:
        steps = [v2.Resize(list(input_size or (SCRATCH_INPUT_SIZE, SCRATCH_INPUT_SIZE)), antialias=True)]
    else:
        recipe = weights.transforms()
        steps = [
            v2.Resize(recipe.resize_size, interpolation=recipe.interpolation, antialias=True),
            v2.CenterCrop(recipe.crop_size),
        ]
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True)])


def find_head(model: nn.Module, num_outputs: int) -> str:
    """Name of the classifier: the last ``Linear`` (or 1x1-conv, as in SqueezeNet) layer with
    ``num_outputs`` outputs. torchvision registers the classifier last in every family
    (``fc``, ``classifier[-1]``, ``heads.head``, ``head``, ...)."""
    names = [
        name
        for name, module in model.named_modules()
        if (isinstance(module, nn.Linear) and module.out_features == num_outputs)
        or (isinstance(module, nn.Conv2d) and module.out_channels == num_outputs)
    ]
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no Linear or Conv2d layer with {num_outputs} outputs to replace"
        )
    return names[-1]


def head_block(model: nn.Module, layer_name: str) -> str:
    """The classifier layer's enclosing block when the block's other layers hold no parameters
    (MobileNetV2's and EfficientNet's ``classifier``: dropout, then the layer), else the layer.
    The head's parameters are the same either way; the block keeps the dropout inside the
    head, which the frozen-feature cache (models/feature_cache.py) then still applies."""
    parent_name, _, _ = layer_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else None
    if not isinstance(parent, nn.Sequential):
        return layer_name
    layer = model.get_submodule(layer_name)
    others = [child for child in parent.children() if child is not layer]
    holds_parameters = any(next(child.parameters(), None) is not None for child in others)
    return layer_name if holds_parameters else parent_name


def replace_head(model: nn.Module, num_outputs: int, num_classes: int) -> str:
    """Replace the classifier layer (see :func:`find_head`) by a fresh one for ``num_classes``."""
    name = find_head(model, num_outputs)
    old = model.get_submodule(name)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding)
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent), attribute, new)
    return name


def disable_aux_logits(model: nn.Module) -> None:
    """Inception v3 and GoogLeNet train auxiliary classifiers for ImageNet; a new task
    uses only the main output (and the aux heads' class counts would not match)."""
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for attribute in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, attribute):
                setattr(model, attribute, None)


class TorchvisionNet(FinetunedNet):
    """A torchvision classification model with a new head and a fine-tuning strategy.

    Args:
        input_shape, num_classes: from the data module.
        name: the torchvision model name (``python -m imgcls.models.list``).
        pretrained: load the default weights (``pretrained=true`` on the command line).
        weights: load these weights by name (``IMAGENET1K_V2``); implies ``pretrained``.
        weights_path: load this local state dict (the architecture's torchvision layout, its
            original head) instead; preprocessing then follows ``weights`` or the default weights.
        load_weights: False builds the same net and preprocessing without reading any weights
            file, for when a checkpoint's state dict replaces them anyway.
        new_head: False keeps the pretrained classifier and its classes (``num_classes`` must
            then be the weights' class count), e.g. to predict ImageNet classes.
        finetune: ``full``, ``frozen`` or ``gradual`` (see the module docstring).
        unfreeze_at_epoch: the epoch at which ``gradual`` unfreezes the backbone.
        backbone_lr_mult: the backbone's learning rate is ``lr * backbone_lr_mult``.
        head: dotted name of the module that counts as the head (trains when the backbone is
            frozen, keeps the base learning rate), e.g. ``classifier``; default: the new layer,
            with the parameter-free layers beside it (see :func:`head_block`).
        input_size: ``[H, W]`` (or one int) the images are resized to; default: the weights'
            crop size, or 224 without weights.
        builder_args: extra keyword arguments of torchvision's model builder (``dropout``, ...).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        name: str,
        pretrained: bool = False,
        weights: str | None = None,
        weights_path: str | None = None,
        load_weights: bool = True,
        new_head: bool = True,
        finetune: str = "full",
        unfreeze_at_epoch: int = 1,
        backbone_lr_mult: float = 1.0,
        head: str | None = None,
        input_size: int | Sequence[int] | None = None,
        builder_args: dict | None = None,
    ):
        super().__init__(name, finetune, unfreeze_at_epoch, backbone_lr_mult, input_shape[0])
        self.weights = resolve_weights(name, weights, pretrained or bool(weights_path))
        self.model = self._build(name, weights_path if load_weights else None, load_weights, builder_args)
        disable_aux_logits(self.model)
        original_classes = len(self.weights.meta["categories"]) if self.weights else 1000
        if new_head:
            self.head_layer_name = replace_head(self.model, original_classes, num_classes)
        elif num_classes == original_classes:
            self.head_layer_name = find_head(self.model, num_classes)
        else:
            raise ValueError(
                f"new_head=false keeps {name}'s {original_classes} classes, the data has {num_classes}"
            )
        self.head = self.model.get_submodule(head or head_block(self.model, self.head_layer_name))

        recipe = self.weights.transforms() if self.weights else None
        size = input_size or (recipe.crop_size if recipe else SCRATCH_INPUT_SIZE)
        size = [size] if isinstance(size, int) else list(size)
        self.input_size = (size[0], size[-1])
        self._normalization = (list(recipe.mean), list(recipe.std)) if recipe else None
        self.apply_finetune()

    def _build(self, name: str, weights_path: str | None, load_weights: bool, builder_args: dict | None):
        kwargs = dict(builder_args or {})
        if weights_path:
            model = torchvision.models.get_model(name, **kwargs)
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            try:
                model.load_state_dict(state)
            except RuntimeError as error:
                raise ValueError(
                    f"{weights_path} is not a state dict of torchvision's {name}: {error}"
                ) from None
            return model
        if self.weights is not None and load_weights:
            return pretrained_model(name, self.weights, **kwargs)
        if self.weights is not None:  # the weights' class count, so their head is found and replaced
            kwargs.setdefault("num_classes", len(self.weights.meta["categories"]))
        return torchvision.models.get_model(name, **kwargs)

    def photo_transform(self) -> v2.Compose:
        """Preprocessing for whole photos (predict): the weights' resize and center crop."""
        return preprocess_for(self.weights, self.input_size)
