"""What every pretrained-backbone net shares: a head, a fine-tuning strategy, its preprocessing.

:class:`FinetunedNet` is the base of :class:`~imgcls.models.torchvision_net.TorchvisionNet` and
:class:`~imgcls.models.timm_net.TimmNet`. A subclass builds ``self.model`` (images to logits),
names ``self.head`` (the module that trains when the backbone is frozen), sets ``input_size``
and ``_normalization``, then calls :meth:`apply_finetune`.

Fine-tuning strategies (``finetune``):

* ``full``: everything trains; ``backbone_lr_mult`` scales the backbone's learning rate;
* ``frozen``: only the head trains; the backbone's BatchNorm layers stay in eval mode, so
  their running statistics are those of the pretrained weights;
* ``gradual``: ``frozen`` until epoch ``unfreeze_at_epoch``, then the backbone trains with
  ``lr * backbone_lr_mult`` (the :class:`~imgcls.training.finetuning.GradualUnfreezing`
  callback, which the net hands to Lightning through ``training_callbacks()``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from imgcls.models.net_interface import ClassifierNet

FINETUNE_STRATEGIES = ("full", "frozen", "gradual")
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


class FinetunedNet(ClassifierNet):
    model: nn.Module
    head: nn.Module
    input_size: tuple[int, int]

    def __init__(
        self, name: str, finetune: str, unfreeze_at_epoch: int, backbone_lr_mult: float, channels: int
    ):
        super().__init__()
        if finetune not in FINETUNE_STRATEGIES:
            raise ValueError(f"finetune={finetune!r}; choose one of {', '.join(FINETUNE_STRATEGIES)}")
        if channels not in (1, 3):
            raise ValueError(f"{name} takes RGB or grayscale images, got {channels} channels")
        self.name = name
        self.finetune = finetune
        self.unfreeze_at_epoch = int(unfreeze_at_epoch)
        self.backbone_lr_mult = float(backbone_lr_mult)
        self.backbone_frozen = False
        self._normalization: tuple[list[float], list[float]] | None = None

    def apply_finetune(self) -> None:
        """Freeze the backbone for ``frozen`` and ``gradual`` (call once the head is known)."""
        if self.finetune in ("frozen", "gradual"):
            self.set_backbone_trainable(False)

    # --- what the classifier and the trainer use -----------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:  # grayscale data, RGB model
            images = images.expand(-1, 3, -1, -1)
        if tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear", antialias=True)
        return self.model(images)

    def input_normalization(self) -> tuple[list[float], list[float]] | None:
        """Pretrained weights expect their own normalization."""
        return self._normalization

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimizer groups: the head at ``lr``; the backbone at ``lr * backbone_lr_mult``
        when it trains (a ``gradual`` backbone joins later, see ``GradualUnfreezing``)."""
        groups = [{"params": list(self.head.parameters()), "lr": lr, "name": "head"}]
        if not self.backbone_frozen:
            groups.insert(
                0,
                {"params": self.backbone_parameters(), "lr": lr * self.backbone_lr_mult, "name": "backbone"},
            )
        return groups

    def training_callbacks(self) -> list:
        if self.finetune != "gradual":
            return []
        from imgcls.training.finetuning import GradualUnfreezing

        return [GradualUnfreezing(self.unfreeze_at_epoch, self.backbone_lr_mult)]

    # --- the backbone's features, for the feature cache ------------------------------------
    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """What the head receives for normalized ``images``: ``self.head(features)`` are the
        logits (checked, see :func:`check_head_is_last`). Run it in eval mode, under no_grad."""
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            logits = self(images)
        finally:
            handle.remove()
        check_head_is_last(self, captured, logits)
        return captured[-1]

    def random_layers(self) -> list[str]:
        """Modules outside the head that act randomly in training (dropout, stochastic depth):
        cached features, computed in eval mode, leave them out."""
        from torchvision.ops import StochasticDepth

        head = {id(m) for m in self.head.modules()}
        names = []
        for name, module in self.model.named_modules():
            if id(module) in head:
                continue
            if isinstance(module, (*_DROPOUTS, StochasticDepth)):
                rate = module.p
            else:
                rate = getattr(module, "drop_prob", None)  # timm's DropPath and DropBlock
            if rate:
                names.append(name)
        return names

    # --- freezing ------------------------------------------------------------------------
    def backbone_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head.parameters()}
        return [p for p in self.model.parameters() if id(p) not in head]

    def set_backbone_trainable(self, trainable: bool) -> None:
        for parameter in self.backbone_parameters():
            parameter.requires_grad_(trainable)
        self.backbone_frozen = not trainable
        self.train(self.training)

    def train(self, mode: bool = True):
        """A frozen backbone keeps its BatchNorm layers in eval mode: they normalize with the
        pretrained running statistics and do not update them."""
        super().train(mode)
        if mode and self.backbone_frozen:
            head = {id(m) for m in self.head.modules()}
            for module in self.model.modules():
                if isinstance(module, _BatchNorm) and id(module) not in head:
                    module.eval()
        return self


def check_head_is_last(net: FinetunedNet, captured: list[torch.Tensor], logits: torch.Tensor) -> None:
    """Features can stand in for images only when the head's output is the net's output (not,
    e.g., SqueezeNet's conv head, which pooling follows)."""
    if len(captured) != 1 or not torch.allclose(net.head(captured[0]), logits, rtol=1e-4, atol=1e-5):
        raise ValueError(
            f"{net.name}: the head's output is not the net's output, so its features cannot be cached; "
            "set model.head to the module that produces the logits, or model.cache_features=false"
        )
