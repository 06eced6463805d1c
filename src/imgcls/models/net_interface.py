"""What a net may offer the classifier and the trainer, declared once.

Any ``nn.Module`` that maps ``[N, C, H, W]`` images to logits is a net. A net that has
more to say subclasses :class:`ClassifierNet` and overrides what applies; the classifier
reads these things and nothing else.
"""

from __future__ import annotations

from torch import nn


class ClassifierNet(nn.Module):
    """A net with its own preprocessing, optimizer groups or training callbacks."""

    def input_normalization(self) -> tuple[list[float], list[float]] | None:
        """``(mean, std)`` its weights expect (pretrained nets); None: the data's statistics."""
        return None

    def parameter_groups(self, lr: float) -> list[dict] | None:
        """Optimizer parameter groups (e.g. a lower backbone learning rate); None: one group."""
        return None

    def training_callbacks(self) -> list:
        """Lightning callbacks its training needs (e.g. gradual unfreezing)."""
        return []

    def cam_target_layer(self) -> nn.Module | None:
        """The feature map Grad-CAM explains; None: the last convolutional stage (models/grad_cam.py)."""
        return None

    def embedding_layer(self) -> nn.Module | None:
        """The final classifier layer, whose input is the image's embedding (the projector's
        points); None: the net's last ``nn.Linear`` (models/embeddings.py)."""
        return None


_PLAIN = ClassifierNet()


def offers(net: nn.Module) -> ClassifierNet:
    """``net`` itself when it declares what it offers, else the defaults (a plain module)."""
    return net if isinstance(net, ClassifierNet) else _PLAIN
