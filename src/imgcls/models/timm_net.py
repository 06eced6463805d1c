"""Any timm model by name (``timm.list_models``), ready for transfer learning.

``TimmNet`` builds ``timm.create_model(name, num_classes=<the data's>)``: timm sizes the head.
Pretrained weights come from a local file (``weights_file``: ``.safetensors``, or a ``.pth``
read with ``weights_only``, so loading never runs code) or the Hugging Face hub
(``pretrained``; a cached file is used from the cache without the network, see
:mod:`imgcls.models.timm_weights`). Both go through timm's own loader
(``pretrained_cfg_overlay``), which drops the original head. A file is first checked against
the architecture, so a wrong one fails naming its mismatching keys.

Preprocessing follows timm's data config (``resolve_model_data_config``): the input size
(images are resized on the device, as for torchvision nets) and, with pretrained weights, their
mean/std. Fine-tuning (``full``, ``frozen``, ``gradual``, ``backbone_lr_mult``): see
:mod:`imgcls.models.finetuned_net`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.transforms import v2

from imgcls.models import timm_weights
from imgcls.models.finetuned_net import FinetunedNet
from imgcls.models.weights import PretrainedWeightsMissing

# Keys listed in a mismatch error: enough to recognise the architecture, short enough to read.
SHOWN_KEYS = 8


class TimmNet(FinetunedNet):
    """A timm model with a head for the data's classes and a fine-tuning strategy.

    Args:
        input_shape, num_classes: from the data module.
        name: the timm model name, optionally with a weights tag (``convnext_nano.in12k_ft_in1k``).
        pretrained: load the hub weights (cached, or downloaded when online).
        weights_file: load this local file instead (the architecture's timm layout).
        load_weights: False builds the same net and preprocessing without reading weights, for
            when a checkpoint's state dict replaces them anyway.
        finetune, unfreeze_at_epoch, backbone_lr_mult: see :mod:`imgcls.models.finetuned_net`.
        head: dotted name of the module that counts as the head; default: timm's classifier.
        input_size: ``[H, W]`` (or one int); default: timm's data config for the model.
        builder_args: extra keyword arguments of ``timm.create_model`` (``drop_rate``, ...).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        name: str,
        pretrained: bool = False,
        weights_file: str | None = None,
        load_weights: bool = True,
        finetune: str = "full",
        unfreeze_at_epoch: int = 1,
        backbone_lr_mult: float = 1.0,
        head: str | None = None,
        input_size: int | Sequence[int] | None = None,
        builder_args: dict | None = None,
    ):
        super().__init__(name, finetune, unfreeze_at_epoch, backbone_lr_mult, input_shape[0])
        import timm

        timm_weights.check_model_name(name)
        self.pretrained = bool(pretrained or weights_file)
        kwargs = {**(builder_args or {}), "num_classes": num_classes}
        if self.pretrained and load_weights:
            self.model = self._pretrained(name, weights_file, kwargs)
        else:
            self.model = timm.create_model(name, **kwargs)
        self.head = self.model.get_submodule(head) if head else self.model.get_classifier()
        if not isinstance(self.head, nn.Module) or not any(True for _ in self.head.parameters()):
            raise ValueError(f"timm's {name} has no single classifier module; set model.head=<module name>")

        self.data_config = timm.data.resolve_model_data_config(self.model)
        size = input_size or self.data_config["input_size"][1:]
        size = [size] if isinstance(size, int) else list(size)
        self.input_size = (int(size[0]), int(size[-1]))
        if self.pretrained:
            self._normalization = (list(self.data_config["mean"]), list(self.data_config["std"]))
        self.apply_finetune()

    def _pretrained(self, name: str, weights_file: str | None, kwargs: dict) -> nn.Module:
        import timm

        path = Path(weights_file) if weights_file else timm_weights.cached_weights_file(name)
        if path is None and timm_weights.hub_offline():
            raise PretrainedWeightsMissing(timm_weights.missing_message(name))
        if path is None:  # not cached: timm downloads from the hub, if the network allows
            try:
                return timm.create_model(
                    name, pretrained=True, cache_dir=timm_weights.hub_cache_dir(), **kwargs
                )
            except Exception as error:  # huggingface_hub raises many kinds; all mean "not here"
                raise PretrainedWeightsMissing(timm_weights.missing_message(name, error)) from error
        if not path.is_file():
            raise FileNotFoundError(f"model.weights_file={path} does not exist")
        state = read_state_dict(path)
        model = timm.create_model(name, **kwargs)
        check_architecture(path, name, state, model)
        # timm's own loader: it drops the original head when the class count differs.
        return timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay={"state_dict": state}, **kwargs
        )

    def photo_transform(self) -> v2.Compose:
        """Preprocessing for whole photos (predict): timm's eval resize (``size / crop_pct``)
        and center crop, without normalization (the classifier normalizes)."""
        crop_pct = float(self.data_config.get("crop_pct") or 1.0)
        resize = [int(side / crop_pct) for side in self.input_size]
        return v2.Compose(
            [
                v2.Resize(resize, antialias=True),
                v2.CenterCrop(list(self.input_size)),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A weights file read without running code: safetensors, or ``torch.load(weights_only=True)``
    (both through timm's reader, which also unwraps ``state_dict``/``model`` entries)."""
    from timm.models import load_state_dict

    try:
        return load_state_dict(str(path), weights_only=True)
    except Exception as error:
        raise ValueError(f"model.weights_file={path} could not be read as weights: {error}") from None


def check_architecture(path: Path, name: str, state: dict, model: nn.Module) -> None:
    """``state`` must hold every weight of ``model`` but its classifier, in the same shapes."""
    expected = model.state_dict()
    classifier = set(_classifier_keys(model))
    missing = [key for key in expected if key not in state and key not in classifier]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in state
        if key in expected and key not in classifier and state[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            f"{label} ({len(keys)}): {', '.join(keys[:SHOWN_KEYS])}{', ...' if len(keys) > SHOWN_KEYS else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", mismatched))
            if keys
        ]
        raise ValueError(f"{path} is not a state dict of timm's {name}: " + "; ".join(problems))


def _classifier_keys(model: nn.Module) -> list[str]:
    names = model.pretrained_cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return [f"{name}.{suffix}" for name in names for suffix in ("weight", "bias")]
