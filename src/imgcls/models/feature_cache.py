"""Frozen-backbone feature cache: the backbone sees each image once, the head trains on features.

With a frozen backbone (``model.finetune=frozen``, or ``gradual`` before it unfreezes) and no
augmentation before the backbone, an image's features are the same every epoch. The
classifier then asks :class:`FeatureCache` for a batch's features by split and sample position
(the loaders hand every batch's positions over); features not yet cached are computed by the
backbone in eval mode (BatchNorm with its pretrained statistics, no dropout) and kept, so the
epochs after the first run only the head. A ``gradual`` net stops using the cache when its
backbone unfreezes.

``model.cache_features``: null (default) caches for ``finetune=frozen`` when the data has no
train-time augmentation; true caches for ``frozen`` or ``gradual`` and turns that augmentation
off, with a console note; false never caches. Dropout or stochastic depth outside the head would
be off with cached features (they are computed in eval mode), so the automatic setting does not
cache such nets: naming the block that holds them as the head (``model.head=classifier`` for
torchvision's MobileNet/EfficientNet) keeps them, and the same results as without the cache.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from imgcls import console
from imgcls.config import ConfigError


class FeatureCache:
    """Each split's features by sample position, filled as batches arrive."""

    def __init__(self):
        self._features: dict[str, torch.Tensor] = {}
        self._filled: dict[str, torch.Tensor] = {}

    def lookup(
        self, split: str, positions: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Features of the samples at ``positions`` of ``split``; ``compute(mask)`` gives those of
        the batch's samples selected by ``mask`` (the ones not cached yet)."""
        self._grow(split, int(positions.max()) + 1, positions.device)
        filled = self._filled.get(split)
        missing = ~filled[positions] if filled is not None else torch.ones_like(positions, dtype=torch.bool)
        if missing.any():
            new = compute(missing).detach()
            if split not in self._features:
                self._features[split] = new.new_zeros((len(self._filled[split]), *new.shape[1:]))
            self._features[split][positions[missing]] = new
            self._filled[split][positions[missing]] = True
        return self._features[split][positions]

    def cached(self, split: str) -> int:
        """How many samples of ``split`` have their features cached."""
        filled = self._filled.get(split)
        return int(filled.sum()) if filled is not None else 0

    def clear(self) -> None:
        self._features.clear()
        self._filled.clear()

    def _grow(self, split: str, size: int, device: torch.device) -> None:
        filled = self._filled.get(split)
        if filled is not None and len(filled) >= size:
            return
        old = len(filled) if filled is not None else 0
        grown = torch.zeros(size, dtype=torch.bool, device=device)
        if filled is not None:
            grown[:old] = filled
        self._filled[split] = grown
        if split in self._features:
            features = self._features[split]
            bigger = features.new_zeros((size, *features.shape[1:]))
            bigger[:old] = features
            self._features[split] = bigger


def configure_feature_cache(setting, model, datamodule) -> bool:
    """Decide ``model.cache_features`` for this net and data (see the module docstring); when
    caching, give the classifier its cache and have the train loader hand over positions."""
    from imgcls.models.finetuned_net import FinetunedNet

    net = model.net
    if setting not in (None, True, False):
        raise ConfigError(f"model.cache_features={setting!r} must be true, false or null (automatic)")
    if setting is False:
        return False
    cacheable = isinstance(net, FinetunedNet) and net.finetune in ("frozen", "gradual")
    random = net.random_layers() if cacheable else []
    if setting is None:
        if not (cacheable and net.finetune == "frozen" and not datamodule.augments):
            return False
        if random:
            console.info(
                f"No feature cache: dropout or stochastic depth outside the head ({', '.join(random[:4])}) "
                "would be off with it. model.head=<the block holding them> (e.g. classifier) keeps them "
                "in the head; model.cache_features=true caches without them."
            )
            return False
    elif not cacheable:
        raise ConfigError(
            "model.cache_features=true needs a pretrained-backbone net (model=torchvision, model=timm, "
            f"model=resnet50, ...) with model.finetune=frozen or gradual; got "
            f"{type(net).__name__} with finetune={getattr(net, 'finetune', None)}"
        )
    if random:
        console.info(f"model.cache_features=true: {', '.join(random[:4])} (outside the head) stay off in training")
    if datamodule.augments:
        was = datamodule.stop_augmenting()
        console.info(f"model.cache_features=true: train-time augmentation ({was}) is off, the backbone sees each image once")
    datamodule.train_positions = True
    model.feature_cache = FeatureCache()
    return True
