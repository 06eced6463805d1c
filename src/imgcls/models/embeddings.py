"""Penultimate features: what a net's final classifier layer sees, for TensorBoard's projector."""

from __future__ import annotations

import torch
from torch import nn

from imgcls.models.net_interface import offers


def embedding_layer(net: nn.Module) -> nn.Module | None:
    """The layer whose input is the embedding: the one the net declares, else its last
    ``nn.Linear`` (the classifier of every net here, timm's and torchvision's); None: none."""
    declared = offers(net).embedding_layer()
    if declared is not None:
        return declared
    linears = [module for module in net.modules() if isinstance(module, nn.Linear)]
    return linears[-1] if linears else None


@torch.no_grad()
def embeddings(model, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``[N, D]`` float32 features of float images ``[N, C, H, W]`` in [0, 1], read by a forward
    pre-hook on :func:`embedding_layer` of ``model.net``; without one, the logits."""
    layer = embedding_layer(model.net)
    device = next(model.parameters()).device
    kept: list[torch.Tensor] = []

    def keep(_module, args):
        kept.append(args[0].detach().flatten(1).float().cpu())

    handle = layer.register_forward_pre_hook(keep) if layer is not None else None
    training = model.training
    model.eval()
    try:
        logits = [model(batch.to(device)).float().cpu() for batch in images.split(batch_size)]
    finally:
        model.train(training)
        if handle is not None:
            handle.remove()
    features = torch.cat(kept) if layer is not None else torch.cat(logits)
    if len(features) != len(images):  # the layer ran more than once a forward: not a classifier head
        raise RuntimeError(
            f"{type(layer).__name__} saw {len(features)} rows for {len(images)} images; declare the "
            "net's classifier with ClassifierNet.embedding_layer()"
        )
    return features
